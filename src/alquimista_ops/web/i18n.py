"""Page language (pt-BR first, English available) and pt-BR/en formats."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

LANGUAGES = ("pt-BR", "en")
DEFAULT_LANGUAGE = "pt-BR"

MESSAGES: dict[str, dict[str, str]] = {
    "app.title": {"pt-BR": "Painel Operacional AlquimistaAI", "en": "AlquimistaAI Operations"},
    "nav.overview": {"pt-BR": "Visão geral", "en": "Overview"},
    "nav.agents": {"pt-BR": "Agentes", "en": "Agents"},
    "nav.usage": {"pt-BR": "Uso", "en": "Usage"},
    "nav.integrations": {"pt-BR": "Integrações", "en": "Integrations"},
    "nav.support": {"pt-BR": "Suporte", "en": "Support"},
    "nav.tenants": {"pt-BR": "Clientes", "en": "Tenants"},
    "nav.billing": {"pt-BR": "Faturamento", "en": "Billing"},
    "nav.operations": {"pt-BR": "Operações", "en": "Operations"},
    "nav.signout": {"pt-BR": "Sair", "en": "Sign out"},
    "nav.skip": {"pt-BR": "Pular para o conteúdo", "en": "Skip to content"},
    "nav.menu": {"pt-BR": "Menu principal", "en": "Main menu"},
    "lang.switch": {"pt-BR": "English", "en": "Português"},
    "login.title": {"pt-BR": "Entrar", "en": "Sign in"},
    "login.email": {"pt-BR": "E-mail", "en": "E-mail"},
    "login.password": {"pt-BR": "Senha", "en": "Password"},
    "login.submit": {"pt-BR": "Entrar", "en": "Sign in"},
    "login.invalid": {
        "pt-BR": "E-mail ou senha incorretos.",
        "en": "Incorrect e-mail or password.",
    },
    "login.cognito": {
        "pt-BR": "Entrar com a conta AlquimistaAI",
        "en": "Sign in with AlquimistaAI",
    },
    "error.forbidden": {
        "pt-BR": "Você não tem acesso a esta página.",
        "en": "You do not have access to this page.",
    },
    "error.not_found": {"pt-BR": "Página não encontrada.", "en": "Page not found."},
    "error.suspended": {
        "pt-BR": "A conta da sua empresa está suspensa.",
        "en": "Your company's account is suspended.",
    },
    "error.back": {"pt-BR": "Voltar ao início", "en": "Back to start"},
    "card.agents": {"pt-BR": "Agentes ativos", "en": "Active agents"},
    "card.users": {"pt-BR": "Usuários ativos", "en": "Active users"},
    "card.requests_month": {"pt-BR": "Requisições no mês", "en": "Requests this month"},
    "card.of_limit": {"pt-BR": "de {limit}", "en": "of {limit}"},
    "card.plan": {"pt-BR": "Plano", "en": "Plan"},
    "usage.title": {"pt-BR": "Uso", "en": "Usage"},
    "usage.trend": {"pt-BR": "Requisições por dia", "en": "Requests per day"},
    "usage.by_agent": {"pt-BR": "Requisições por agente", "en": "Requests per agent"},
    "usage.period": {"pt-BR": "Período", "en": "Period"},
    "usage.agent": {"pt-BR": "Agente", "en": "Agent"},
    "usage.all_agents": {"pt-BR": "Todos os agentes", "en": "All agents"},
    "usage.apply": {"pt-BR": "Aplicar", "en": "Apply"},
    "usage.days": {"pt-BR": "{n} dias", "en": "{n} days"},
    "usage.total_requests": {"pt-BR": "Requisições", "en": "Requests"},
    "usage.success_rate": {"pt-BR": "Taxa de sucesso", "en": "Success rate"},
    "usage.avg_response": {"pt-BR": "Tempo médio de resposta", "en": "Average response time"},
    "usage.tokens": {"pt-BR": "Tokens", "en": "Tokens"},
    "usage.cost": {"pt-BR": "Custo (US$)", "en": "Cost (US$)"},
    "usage.failed": {"pt-BR": "Falhas", "en": "Failures"},
    "usage.date": {"pt-BR": "Data", "en": "Date"},
    "usage.no_data": {"pt-BR": "Sem uso no período.", "en": "No usage in this period."},
    "usage.data_note": {
        "pt-BR": "Dados consolidados até ontem (UTC).",
        "en": "Rolled-up data up to yesterday (UTC).",
    },
    "agents.title": {"pt-BR": "Agentes", "en": "Agents"},
    "agents.name": {"pt-BR": "Agente", "en": "Agent"},
    "agents.category": {"pt-BR": "Categoria", "en": "Category"},
    "agents.status": {"pt-BR": "Status", "en": "Status"},
    "agents.activated": {"pt-BR": "Ativado em", "en": "Activated on"},
    "agents.requests_30d": {"pt-BR": "Requisições (30 dias)", "en": "Requests (30 days)"},
    "agents.none": {"pt-BR": "Nenhum agente.", "en": "No agents."},
    "agents.filter": {"pt-BR": "Mostrar", "en": "Show"},
    "integrations.title": {"pt-BR": "Integrações", "en": "Integrations"},
    "integrations.type": {"pt-BR": "Tipo", "en": "Type"},
    "integrations.name": {"pt-BR": "Nome", "en": "Name"},
    "integrations.last_sync": {"pt-BR": "Última sincronização", "en": "Last sync"},
    "integrations.last_error": {"pt-BR": "Último erro", "en": "Last error"},
    "integrations.config": {"pt-BR": "Configuração", "en": "Configuration"},
    "integrations.none": {"pt-BR": "Nenhuma integração.", "en": "No integrations."},
    "support.title": {"pt-BR": "Suporte e incidentes", "en": "Support and incidents"},
    "support.open": {"pt-BR": "Abertos", "en": "Open"},
    "support.resolved": {"pt-BR": "Resolvidos", "en": "Resolved"},
    "support.critical": {"pt-BR": "Críticos abertos", "en": "Critical open"},
    "support.severity": {"pt-BR": "Gravidade", "en": "Severity"},
    "support.title_col": {"pt-BR": "Incidente", "en": "Incident"},
    "support.created": {"pt-BR": "Aberto em", "en": "Opened"},
    "support.resolved_at": {"pt-BR": "Resolvido em", "en": "Resolved"},
    "support.none": {"pt-BR": "Nenhum incidente.", "en": "No incidents."},
    "support.all": {"pt-BR": "Todos", "en": "All"},
    "pager.previous": {"pt-BR": "Anterior", "en": "Previous"},
    "pager.next": {"pt-BR": "Próxima", "en": "Next"},
    "pager.showing": {"pt-BR": "{start}–{end} de {total}", "en": "{start}–{end} of {total}"},
    "status.active": {"pt-BR": "Ativo", "en": "Active"},
    "status.inactive": {"pt-BR": "Inativo", "en": "Inactive"},
    "status.error": {"pt-BR": "Erro", "en": "Error"},
    "status.pending": {"pt-BR": "Pendente", "en": "Pending"},
    "status.trial": {"pt-BR": "Avaliação", "en": "Trial"},
    "status.suspended": {"pt-BR": "Suspenso", "en": "Suspended"},
    "status.all": {"pt-BR": "Todos", "en": "All"},
    "status.open": {"pt-BR": "Aberto", "en": "Open"},
    "status.resolved": {"pt-BR": "Resolvido", "en": "Resolved"},
    "severity.warning": {"pt-BR": "Atenção", "en": "Warning"},
    "severity.error": {"pt-BR": "Erro", "en": "Error"},
    "severity.critical": {"pt-BR": "Crítico", "en": "Critical"},
    "severity.info": {"pt-BR": "Informação", "en": "Info"},
    "common.never": {"pt-BR": "Nunca", "en": "Never"},
    "common.none": {"pt-BR": "—", "en": "—"},
    "ops.title": {"pt-BR": "Operações", "en": "Operations"},
    "ops.new": {"pt-BR": "Novo comando", "en": "New command"},
    "ops.type": {"pt-BR": "Tipo de comando", "en": "Command type"},
    "ops.tenant": {"pt-BR": "Cliente", "en": "Tenant"},
    "ops.tenant_hint": {"pt-BR": "Digite o nome ou CNPJ", "en": "Type a name or CNPJ"},
    "ops.tenant_optional": {
        "pt-BR": "Opcional: vazio para toda a plataforma",
        "en": "Optional: empty for the whole platform",
    },
    "ops.agent": {"pt-BR": "Agente", "en": "Agent"},
    "ops.integration": {"pt-BR": "Integração", "en": "Integration"},
    "ops.reason": {"pt-BR": "Motivo", "en": "Reason"},
    "ops.from": {"pt-BR": "De", "en": "From"},
    "ops.to": {"pt-BR": "Até", "en": "To"},
    "ops.queue": {"pt-BR": "Fila", "en": "Queue"},
    "ops.limit": {"pt-BR": "Limite", "en": "Limit"},
    "ops.choose": {"pt-BR": "Escolha…", "en": "Choose…"},
    "ops.submit": {"pt-BR": "Enviar comando", "en": "Submit command"},
    "ops.sent": {"pt-BR": "Comando enviado.", "en": "Command submitted."},
    "ops.required": {"pt-BR": "Campo obrigatório.", "en": "This field is required."},
    "ops.range": {
        "pt-BR": "A data final deve ser igual ou posterior à inicial.",
        "en": "The end date must be on or after the start date.",
    },
    "ops.history": {"pt-BR": "Histórico", "en": "History"},
    "ops.status": {"pt-BR": "Status", "en": "Status"},
    "ops.created": {"pt-BR": "Criado em", "en": "Created"},
    "ops.by": {"pt-BR": "Por", "en": "By"},
    "ops.result": {"pt-BR": "Resultado", "en": "Result"},
    "ops.cancel": {"pt-BR": "Cancelar", "en": "Cancel"},
    "ops.none": {"pt-BR": "Nenhum comando ainda.", "en": "No commands yet."},
    "ops.admin_only": {"pt-BR": "somente administradores", "en": "administrators only"},
    "ops.platform": {"pt-BR": "Plataforma", "en": "Platform"},
    "status.PENDING": {"pt-BR": "Pendente", "en": "Pending"},
    "status.RUNNING": {"pt-BR": "Executando", "en": "Running"},
    "status.SUCCESS": {"pt-BR": "Sucesso", "en": "Success"},
    "status.ERROR": {"pt-BR": "Erro", "en": "Error"},
    "status.CANCELLED": {"pt-BR": "Cancelado", "en": "Cancelled"},
    "cmd.HEALTH_CHECK": {"pt-BR": "Verificação de saúde", "en": "Health check"},
    "cmd.RESTART_AGENT": {"pt-BR": "Reiniciar agente", "en": "Restart agent"},
    "cmd.RESET_TOKEN": {"pt-BR": "Redefinir token de integração", "en": "Reset integration token"},
    "cmd.REPROCESS_QUEUE": {"pt-BR": "Reprocessar fila", "en": "Reprocess queue"},
    "cmd.PAUSE_AGENT": {"pt-BR": "Pausar agente", "en": "Pause agent"},
    "cmd.SUSPEND_TENANT": {"pt-BR": "Suspender cliente", "en": "Suspend tenant"},
    "cmd.REACTIVATE_TENANT": {"pt-BR": "Reativar cliente", "en": "Reactivate tenant"},
    "cmd.RECOMPUTE_USAGE": {"pt-BR": "Recalcular uso", "en": "Recompute usage"},
    "cmd.CLEAR_CACHE": {"pt-BR": "Limpar cache", "en": "Clear cache"},
    # -- staff pages --
    "cmddesc.HEALTH_CHECK": {
        "pt-BR": "Banco de dados, cache e fila do worker; para um cliente, também suas "
        "integrações e agentes",
        "en": "Database, cache and worker backlog; for a tenant also its integrations and agents",
    },
    "cmddesc.RESTART_AGENT": {
        "pt-BR": "Agente volta a ativo, erro limpo, reinício registrado",
        "en": "Agent back to active, error cleared, restart recorded",
    },
    "cmddesc.RESET_TOKEN": {
        "pt-BR": "Integração volta a pendente; credenciais e último erro apagados",
        "en": "Integration to pending, credentials and last error cleared",
    },
    "cmddesc.REPROCESS_QUEUE": {
        "pt-BR": "Reenvia as mensagens da fila de mensagens mortas para a origem",
        "en": "Re-drive dead-lettered messages of a queue to its source",
    },
    "cmddesc.PAUSE_AGENT": {"pt-BR": "Agente passa a inativo", "en": "Agent to inactive"},
    "cmddesc.SUSPEND_TENANT": {
        "pt-BR": "Cliente suspenso (seus usuários recebem 403 TENANT_SUSPENDED)",
        "en": "Tenant suspended (its users get 403 TENANT_SUSPENDED)",
    },
    "cmddesc.REACTIVATE_TENANT": {
        "pt-BR": "Cliente suspenso volta a ativo",
        "en": "Suspended tenant back to active",
    },
    "cmddesc.RECOMPUTE_USAGE": {
        "pt-BR": "Refaz a consolidação diária de uso para um intervalo de datas",
        "en": "Re-run the daily usage rollup for a date range",
    },
    "cmddesc.CLEAR_CACHE": {
        "pt-BR": "Apaga as chaves de cache de um cliente ou de todos",
        "en": "Purge the cache keys of a tenant or all",
    },
    "error.bad_request": {"pt-BR": "Endereço inválido.", "en": "Invalid address."},
    "pager.label": {"pt-BR": "Paginação", "en": "Pagination"},
    "pager.first": {"pt-BR": "Voltar à primeira página", "en": "Back to the first page"},
    "company.title": {"pt-BR": "Visão geral da plataforma", "en": "Platform overview"},
    "company.kpis": {"pt-BR": "Indicadores", "en": "Key figures"},
    "company.period_note": {
        "pt-BR": "Período {start} a {end}, comparado com {pstart} a {pend}.",
        "en": "Period {start} to {end}, compared with {pstart} to {pend}.",
    },
    "company.period_range": {"pt-BR": "Período {start} a {end}.", "en": "Period {start} to {end}."},
    "company.see_all": {"pt-BR": "Ver tudo", "en": "See all"},
    "company.recent_incidents": {"pt-BR": "Incidentes recentes", "en": "Recent incidents"},
    "company.incident_counters": {
        "pt-BR": "{open} abertos, {critical} críticos abertos",
        "en": "{open} open, {critical} critical open",
    },
    "company.usage_title": {"pt-BR": "Uso da plataforma", "en": "Platform usage"},
    "kpi.vs_previous": {"pt-BR": "vs. período anterior", "en": "vs. previous period"},
    "kpi.no_previous": {
        "pt-BR": "Sem dados do período anterior",
        "en": "No data for the previous period",
    },
    "kpi.active_tenants": {"pt-BR": "Clientes ativos", "en": "Active tenants"},
    "kpi.tenants_detail": {
        "pt-BR": "de {total} · {used} com uso no período",
        "en": "of {total} · {used} with usage in the period",
    },
    "kpi.new_tenants": {
        "pt-BR": "+{n} novos no período (anterior: {before})",
        "en": "+{n} new in the period (previous: {before})",
    },
    "usage.success_trend": {
        "pt-BR": "Taxa de sucesso por dia (%)",
        "en": "Success rate per day (%)",
    },
    "tenant.show_config": {"pt-BR": "Ver", "en": "Show"},
    "usage.top_tenants": {"pt-BR": "Clientes com mais uso", "en": "Top tenants"},
    "usage.top_agents": {"pt-BR": "Agentes mais usados", "en": "Top agents"},
    "usage.deployments": {"pt-BR": "Implantações ativas", "en": "Active deployments"},
    "usage.deployed": {"pt-BR": "Agentes implantados", "en": "Agents deployed"},
    "usage.failures_n": {"pt-BR": "{n} falhas", "en": "{n} failures"},
    "billing.mrr": {"pt-BR": "MRR", "en": "MRR"},
    "billing.arr": {"pt-BR": "ARR", "en": "ARR"},
    "billing.avg": {"pt-BR": "MRR médio por cliente", "en": "Average MRR per tenant"},
    "billing.new": {"pt-BR": "MRR novo no período", "en": "New MRR in the period"},
    "billing.churned": {"pt-BR": "MRR perdido no período", "en": "Churned MRR in the period"},
    "billing.net": {"pt-BR": "Variação líquida", "en": "Net change"},
    "billing.since": {"pt-BR": "início do período: {value}", "en": "at period start: {value}"},
    "billing.active_n": {"pt-BR": "{n} clientes ativos", "en": "{n} active tenants"},
    "billing.tenants_n": {"pt-BR": "Clientes: {n}", "en": "Tenants: {n}"},
    "billing.tenants": {"pt-BR": "Clientes", "en": "Tenants"},
    "billing.share": {"pt-BR": "Participação", "en": "Share"},
    "billing.by_plan": {"pt-BR": "MRR por plano", "en": "MRR by plan"},
    "billing.by_segment": {"pt-BR": "MRR por segmento", "en": "MRR by segment"},
    "billing.revenue_trend": {"pt-BR": "Evolução do MRR", "en": "Revenue trend (MRR)"},
    "billing.trend_note": {
        "pt-BR": "MRR dos clientes pagantes ao fim de cada dia (UTC).",
        "en": "MRR of the paying tenants at the end of each day (UTC).",
    },
    "billing.none": {"pt-BR": "Nenhum cliente ativo.", "en": "No active tenants."},
    "tenants.title": {"pt-BR": "Clientes", "en": "Tenants"},
    "tenants.filters": {"pt-BR": "Busca e filtros", "en": "Search and filters"},
    "tenants.search": {"pt-BR": "Buscar", "en": "Search"},
    "tenants.search_hint": {
        "pt-BR": "Nome (sem diferenciar acentos) ou dígitos do CNPJ",
        "en": "Name (accents ignored) or CNPJ digits",
    },
    "tenants.bad_search": {
        "pt-BR": "A busca aceita letras, números, espaços e . , ' \" & ( ) / - + @ (até 100).",
        "en": "Search accepts letters, digits, spaces and . , ' \" & ( ) / - + @ (up to 100).",
    },
    "tenants.name": {"pt-BR": "Nome", "en": "Name"},
    "tenants.plan": {"pt-BR": "Plano", "en": "Plan"},
    "tenants.segment": {"pt-BR": "Segmento", "en": "Segment"},
    "tenants.mrr": {"pt-BR": "MRR estimado", "en": "Estimated MRR"},
    "tenants.created": {"pt-BR": "Cliente desde", "en": "Customer since"},
    "tenants.all_plans": {"pt-BR": "Todos os planos", "en": "All plans"},
    "tenants.all_segments": {"pt-BR": "Todos os segmentos", "en": "All segments"},
    "tenants.per_page": {"pt-BR": "Por página", "en": "Per page"},
    "tenants.apply": {"pt-BR": "Filtrar", "en": "Filter"},
    "tenants.clear": {"pt-BR": "Limpar", "en": "Clear"},
    "tenants.count": {"pt-BR": "{n} clientes encontrados", "en": "{n} tenants found"},
    "tenants.agents_users": {"pt-BR": "Agentes / usuários", "en": "Agents / users"},
    "tenants.requests_short": {"pt-BR": "Req. 30 d", "en": "Req. 30 d"},
    "tenants.none": {"pt-BR": "Nenhum cliente encontrado.", "en": "No tenants found."},
    "tenant.open_dashboard": {"pt-BR": "Abrir painel do cliente", "en": "Open tenant dashboard"},
    "tenant.sections": {"pt-BR": "Seções do cliente", "en": "Tenant sections"},
    "tenant.requests_7d": {"pt-BR": "Requisições (7 dias)", "en": "Requests (7 days)"},
    "tenant.success_30d": {"pt-BR": "Sucesso (30 dias)", "en": "Success (30 days)"},
    "tenant.updated": {"pt-BR": "Atualizado em", "en": "Updated"},
    "tenant.churned": {"pt-BR": "Cancelado em", "en": "Churned"},
    "tenant.limits": {"pt-BR": "Limites do plano", "en": "Plan limits"},
    "tenant.limits_value": {
        "pt-BR": "{agents} agentes · {users} usuários · {requests} requisições/mês",
        "en": "{agents} agents · {users} users · {requests} requests/month",
    },
    "tenant.total_requests": {"pt-BR": "Requisições (total)", "en": "Requests (total)"},
    "tenant.last_request": {"pt-BR": "Última requisição", "en": "Last request"},
    "tenant.no_credentials": {
        "pt-BR": "Credenciais nunca são exibidas.",
        "en": "Credentials are never shown.",
    },
    "tab.overview": {"pt-BR": "Resumo", "en": "Overview"},
    "tab.users": {"pt-BR": "Usuários", "en": "Users"},
    "tab.agents": {"pt-BR": "Agentes", "en": "Agents"},
    "tab.integrations": {"pt-BR": "Integrações", "en": "Integrations"},
    "tab.incidents": {"pt-BR": "Incidentes", "en": "Incidents"},
    "users.name": {"pt-BR": "Nome", "en": "Name"},
    "users.role": {"pt-BR": "Papel", "en": "Role"},
    "users.last_login": {"pt-BR": "Último acesso", "en": "Last sign-in"},
    "users.none": {"pt-BR": "Nenhum usuário.", "en": "No users."},
    "role.admin": {"pt-BR": "Administrador", "en": "Administrator"},
    "role.user": {"pt-BR": "Usuário", "en": "User"},
    "role.viewer": {"pt-BR": "Leitor", "en": "Viewer"},
    "integrations.syncs": {"pt-BR": "Sincronizações", "en": "Syncs"},
    "integrations.errors": {"pt-BR": "Erros", "en": "Errors"},
    "plan.starter": {"pt-BR": "Starter", "en": "Starter"},
    "plan.professional": {"pt-BR": "Professional", "en": "Professional"},
    "plan.business": {"pt-BR": "Business", "en": "Business"},
    "plan.enterprise": {"pt-BR": "Enterprise", "en": "Enterprise"},
    "segment.saude": {"pt-BR": "Saúde", "en": "Healthcare"},
    "segment.educacao": {"pt-BR": "Educação", "en": "Education"},
    "segment.varejo": {"pt-BR": "Varejo", "en": "Retail"},
    "segment.servicos": {"pt-BR": "Serviços", "en": "Services"},
    "segment.tecnologia": {"pt-BR": "Tecnologia", "en": "Technology"},
    "segment.outro": {"pt-BR": "Outro", "en": "Other"},
}


def translate(lang: str, key: str, **values: Any) -> str:
    entry = MESSAGES.get(key)
    text = entry.get(lang, entry[DEFAULT_LANGUAGE]) if entry else key
    return text.format(**values) if values else text


_PT_BR_SEPARATORS = str.maketrans(",.", ".,")


def format_number(lang: str, value: Any, digits: int = 0) -> str:
    """``value`` rounded to ``digits``, with the language's thousands and decimal separators
    (Python's own grouping, then swapped for pt-BR: the pages format hundreds of numbers)."""
    if value is None:
        return "—"
    number = round(float(value), digits)
    text = f"{abs(number):,.{digits}f}"
    if lang == "pt-BR":
        text = text.translate(_PT_BR_SEPARATORS)
    return "-" + text if number < 0 else text


def format_brl(lang: str, value: Any) -> str:
    return "R$ " + format_number(lang, value if value is not None else 0, 2)


def format_usd(lang: str, value: Any) -> str:
    return "US$ " + format_number(lang, value if value is not None else 0, 2)


def format_percent(lang: str, value: Any) -> str:
    return format_number(lang, value, 1) + "%"


def format_date(lang: str, value: date | datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    day = value.date() if isinstance(value, datetime) else value
    return day.strftime("%d/%m/%Y") if lang == "pt-BR" else day.isoformat()


def format_datetime(lang: str, value: datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    fmt = "%d/%m/%Y %H:%M" if lang == "pt-BR" else "%Y-%m-%d %H:%M"
    return value.strftime(fmt) + " UTC"
