"""The model as Gavel `.rules` files: one file per package, `{path: text}`."""

from __future__ import annotations

from .policy import FIAT, PeerPackage, PeerPolicy, PeerRule


def _q(s: str) -> str:
    return '"' + s + '"'


def _set(items) -> str:
    return "{" + ", ".join(_q(i) for i in items) + "}"


def _test(path: str, values: tuple[str, ...], lets: dict[tuple[str, ...], str]) -> str:
    if values in lets:
        return f"{path} in {lets[values]}"
    if len(values) == 1:
        return f"{path} == {_q(values[0])}"
    return f"{path} in {_set(values)}"


def conditions(rule: PeerRule, lets: dict[tuple[str, ...], str] | None = None) -> list[str]:
    lets = lets or {}
    out = []
    if rule.types is not None:
        out.append(_test("action.type", rule.types, lets))
    if rule.agents is not None:
        out.append(_test("agent.id", rule.agents, lets))
    out += [f"action.amount {b.op} {b.value}" for b in rule.amount]
    if rule.currencies is not None:
        out.append(_test("action.currency", rule.currencies, lets))
    if rule.jurisdictions is not None:
        out.append(_test("action.jurisdiction", rule.jurisdictions, lets))
    return out


def rule_text(rule: PeerRule, lets: dict[tuple[str, ...], str] | None = None) -> str:
    conds = conditions(rule, lets)
    lines = [f"rule {rule.name}", f'  {rule.effect} "{rule.package.split(".")[0]}.{rule.name}"']
    if len(conds) == 1:
        lines.append(f"  when {conds[0]}")
    else:
        lines += ["  when {", *(f"    {c}" for c in conds), "  }"]
    if rule.effect == "require_approval":
        lines += ["  route {", f'    role: "{rule.role}"', "  }"]
    return "\n".join(lines) + "\n"


def package_text(pkg: PeerPackage) -> str:
    uses_fiat = any(r.currencies == FIAT for r in pkg.rules)
    lets = {FIAT: "fiat"} if uses_fiat else {}
    out = [f"package {pkg.name}", ""]
    if uses_fiat:
        out += [f"let fiat = {_set(FIAT)}", ""]
    if pkg.scope is not None:
        out += [f"scope action.type in {_set(pkg.scope)}", ""]
    body = "\n".join(out) + "\n"
    return body + "\n".join(rule_text(r, lets) for r in pkg.rules)


def sources(model: PeerPolicy) -> dict[str, str]:
    return {f"rules/{p.name.replace('.', '/')}.rules": package_text(p) for p in model.packages}
