"""Security tests run against real servers: the e2e harness (a grpc.aio server on a loopback port
over a real store), the REST shim beside it, and `gavel serve` processes."""

from tests.e2e.conftest import harness, rules_dir, settings_overrides, workdir  # noqa: F401  (fixtures)
