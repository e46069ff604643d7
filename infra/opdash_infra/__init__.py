"""CDK app of the Operational Dashboard: the stack ``OperationalDashboardStack-<env>``."""
