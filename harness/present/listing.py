"""`harness list` as text: the registered model families, datasets, KD methods and attacks with their parameters
and plugins, and the presets. Imports no heavy library: listing answers before torch could load."""

from __future__ import annotations

from harness.contract.specs import describe_training


def listing(reg, found) -> str:
    """The registry `reg` (`harness.config.registry`) and the plugins it loaded (`harness.config.plugins`)."""
    out = [f"Model families (registry: {reg.path})"]
    for f in found.families.values():
        out.append(f"  {f.name:<16}{f.description}")
        out.append(f"  {'':<16}sizes {', '.join(f.sizes)}; teacher {f.teacher}, student {f.student}; "
                   f"from plugin {found.origin[('families', f.name)]}")
        for p in f.params:
            out.append(f"  {'':<18}--family-arg {p.describe()}")
    out.append("\nDatasets")
    for d in found.datasets.values():
        out.append(f"  {d.name:<16}{d.description} [licence: {d.licence}]")
        out.append(f"  {'':<18}from plugin {found.origin[('datasets', d.name)]}")
        for p in d.params:
            out.append(f"  {'':<18}--dataset-arg {p.describe()}")
    out.append("\nKD methods")
    family = found.families.get(reg.family)  # the default family's preset, to show what an override gives
    home = reg.presets.get((family.preset or family.name) if family else "")
    for m in found.methods.values():
        alias = f" (alias {', '.join(m.aliases)})" if m.aliases else ""
        out.append(f"  {m.name:<16}{m.description}{alias}")
        out.append(f"  {'':<18}teacher access: {m.teacher_access}" + ("; on-policy" if m.on_policy else "")
                   + (f"; {m.paper}" if m.paper else "")
                   + f"; from plugin {found.origin[('methods', m.name)]}")
        for p in m.params:
            out.append(f"  {'':<18}--method-arg {p.describe()}")
        if m.training:
            out.append(f"  {'':<18}student recipe: the preset's, with {describe_training(m.training)}"
                       + (f" (preset {home.name}: {home.training('student', m).describe()})" if home else ""))
    out.append("\nMembership attacks (every one runs on every role)")
    for a in found.attacks.values():
        out.append(f"  {a.name:<16}{a.description}" + ("; needs a reference model" if a.needs_reference else ""))
        out.append(f"  {'':<18}" + (f"{a.paper}; " if a.paper else "") + f"from plugin {found.origin[('attacks', a.name)]}")
        for p in a.params:
            out.append(f"  {'':<18}--attack-arg {a.name}.{p.describe()}")
    out.append("\nPresets: " + ", ".join(reg.presets))
    return "\n".join(out)


def boards(folder, where: str) -> str:
    """The published boards in `folder` (leaderboards/, found as `where` says): each with its title and whether its
    snapshot is there to read (`harness leaderboard --board NAME`) or still to publish. A spec that does not load
    is listed with why, not raised: the rest of the listing still answers."""
    from harness.errors import UsageError
    from harness.leaderboard.board_specs import load_spec

    out = [f"Published boards (leaderboards: {where}; `harness leaderboard --board NAME`)"]
    for path in sorted(folder.glob("*.toml")):
        try:
            spec = load_spec(path.stem, folder, rules=False)
        except UsageError as err:
            out.append(f"  {path.stem:<16}cannot be read: {err}")
            continue
        state = "" if spec.snapshot.is_file() else f" [no snapshot yet: harness leaderboard publish {spec.name}]"
        out.append(f"  {spec.name:<16}{spec.title}{state}")
        out.append(f"  {'':<18}preset {spec.preset}, {len(spec.methods)} methods x {len(spec.seeds)} seeds")
    if len(out) == 1:
        out.append("  none")
    return "\n".join(out)
