"""Large policies as platform teams generate them: one file of per-agent rules."""

from __future__ import annotations


def per_agent_rules(n: int, package: str = "fleet") -> str:
    """`n` per-agent allow rules in one file (10,000 of them are ~1.36 MB), one scope."""
    rules = "".join(f'rule agent_{i:05d}_payment_limit\n  allow "agent.within_limit"\n  when {{\n'
                    f'    agent.id == "fleet-agent-{i:05d}"\n    action.amount <= {100 + i % 900}\n  }}\n\n'
                    for i in range(n))
    return f'package {package}\n\nscope action.type == "payment"\n\n{rules}'
