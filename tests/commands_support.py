"""Helpers of the command tests: a small world of tenants, agents and integrations, and the
worker process used by the fault test (``python -m tests.commands_support worker``)."""

from __future__ import annotations

import random
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from alquimista_ops.commands.handlers import HANDLERS, Handler, HandlerContext
from alquimista_ops.core.clock import utcnow
from alquimista_ops.core.schema import agents, tenant_agents, tenant_integrations, tenants
from alquimista_ops.core.text import fold
from alquimista_ops.tenants.cnpj import generate as generate_cnpj


@dataclass
class Tenant:
    id: uuid.UUID
    agent_id: uuid.UUID
    activation_id: uuid.UUID
    integration_id: uuid.UUID


def make_tenant(engine: Engine, name: str = "Clínica Teste", status: str = "active") -> Tenant:
    rng = random.Random(name)
    tenant_id, activation_id, integration_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with engine.begin() as conn:
        agent_id = conn.execute(
            sa.select(agents.c.id).order_by(agents.c.name).limit(1)
        ).scalar_one()
        conn.execute(
            sa.insert(tenants).values(
                id=tenant_id,
                name=name,
                name_search=fold(name),
                cnpj=generate_cnpj(rng),
                segment="saude",
                plan="starter",
                status=status,
                mrr_estimate=100,
            )
        )
        conn.execute(
            sa.insert(tenant_agents).values(
                id=activation_id,
                tenant_id=tenant_id,
                agent_id=agent_id,
                status="error",
                last_error="model timeout",
            )
        )
        conn.execute(
            sa.insert(tenant_integrations).values(
                id=integration_id,
                tenant_id=tenant_id,
                integration_type="whatsapp",
                integration_name="WhatsApp Business",
                status="error",
                credentials_encrypted="ciphertext",
                last_error="401 from provider",
            )
        )
    return Tenant(tenant_id, agent_id, activation_id, integration_id)


def slow(handler: Handler, seconds: float) -> Handler:
    def run(ctx: HandlerContext) -> dict[str, Any]:
        output = handler(ctx)
        time.sleep(seconds)  # inside the effect's transaction: a kill here loses the effect
        return output

    return run


def _worker_main(seconds: float) -> None:
    from alquimista_ops.commands.cli import build_worker, run_worker
    from alquimista_ops.core.settings import Settings

    handlers = dict(HANDLERS)
    handlers["RESTART_AGENT"] = slow(HANDLERS["RESTART_AGENT"], seconds)
    settings = Settings()
    print(f"worker ready {utcnow().isoformat()}", flush=True)
    run_worker(build_worker(settings, concurrency=2, batch_size=5, handlers=handlers))


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        _worker_main(float(sys.argv[2]) if len(sys.argv) > 2 else 0.01)
