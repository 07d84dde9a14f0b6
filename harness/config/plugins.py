"""The plugin manager: the built-ins, registered in code; modules and files from registry.toml; installed
plugins from entry points.

The built-ins are listed here (DEFAULT_PLUGINS, as simonw/llm's `llm/plugins.py` does) and are
registered exactly like a third-party plugin, by module name; a registry.toml can only add to them
or disable one by name (`[plugins] disabled = ["harness_plugins.methods.minillm"]`).

Every registration is attributed to the plugin that made it, so a duplicate name is reported
with both plugins' names, and a hook that raises skips its plugin with a warning that names it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any

import pluggy

from harness.config.registry import Registry
from harness.contract import hookspecs
from harness.contract.specs import Attack, Dataset, KDMethod, ModelFamily, Registered
from harness.errors import UsageError, unknown
from harness.runtime import log

ENTRY_POINT_GROUP = "harness"

# The built-in plugins (plugins/, installed as harness_plugins), always loaded unless disabled by name.
DEFAULT_PLUGINS = (
    "harness_plugins.families.tiny",
    "harness_plugins.families.pythia",
    "harness_plugins.families.olmo2",
    "harness_plugins.families.qwen3",
    "harness_plugins.families.gpt2",
    "harness_plugins.families.opt",
    "harness_plugins.datasets.synthetic_pii",
    "harness_plugins.datasets.text_files",
    "harness_plugins.datasets.wikitext",
    "harness_plugins.datasets.fineweb",
    "harness_plugins.datasets.nemotron_cc",
    "harness_plugins.datasets.dolly",
    "harness_plugins.methods.soft_kd",
    "harness_plugins.methods.hard_kd",
    "harness_plugins.methods.reverse_kl",
    "harness_plugins.methods.jsd",
    "harness_plugins.methods.tvd",
    "harness_plugins.methods.skew_kl",
    "harness_plugins.methods.topk_kd",
    "harness_plugins.methods.rs_kd",
    "harness_plugins.methods.hidden_mse",
    "harness_plugins.methods.gkd",
    "harness_plugins.methods.imitkd",
    "harness_plugins.methods.minillm",
    "harness_plugins.methods.dp_kd",
    "harness_plugins.methods.dedup_ft",
    "harness_plugins.attacks.loss",
    "harness_plugins.attacks.zlib",
    "harness_plugins.attacks.min_k",
    "harness_plugins.attacks.reference",
)

_HOOKS = {
    "register_model_families": ("families", ModelFamily, "model family"),
    "register_datasets": ("datasets", Dataset, "dataset"),
    "register_kd_methods": ("methods", KDMethod, "KD method"),
    "register_attacks": ("attacks", Attack, "attack"),
}


def manager(registry: Registry) -> pluggy.PluginManager:
    """A plugin manager holding every active plugin, each under a name that says where it came from."""
    pm = pluggy.PluginManager("harness")
    pm.add_hookspecs(hookspecs)
    for module in (*DEFAULT_PLUGINS, *registry.modules):
        if module not in registry.disabled and not pm.has_plugin(module):
            _register(pm, _import_module(module), module)
    for path in registry.files:
        if path.name not in registry.disabled and str(path) not in registry.disabled and not pm.has_plugin(str(path)):
            _register(pm, _import_file(path), str(path))
    if registry.entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in registry.disabled or pm.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as err:  # noqa: BLE001 - any import error is the plugin's, reported as such
                raise UsageError(f"plugin {ep.name!r} (entry point {ep.value}) failed to import: {_cause(err)}") from None
            _register(pm, plugin, ep.name)
    for hook_name, caller in vars(pm.hook).items():
        impls = [] if caller.has_spec() else caller.get_hookimpls()
        if impls:  # a hookimpl that no hookspec declares: a misspelt hook, silently never called
            raise unknown(f"hook in plugin {impls[0].plugin_name!r}", hook_name, _HOOKS)
    return pm


def _register(pm: pluggy.PluginManager, plugin: Any, name: str) -> None:
    if pm.is_registered(plugin):  # listed as a module and also installed with an entry point: once is enough
        return
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as err:
        detail = str(err).splitlines()[-1]
        raise UsageError(f"plugin {name!r} does not match the hooks of harness.contract.hookspecs: {detail}") from None


def collect(pm: pluggy.PluginManager) -> Registered:
    """Call every plugin's hooks and gather what they register; names must be unique.

    A plugin whose hook raises (or registers the wrong type) is skipped whole, with a one-line
    warning naming it: one broken plugin must not take the others down. Asking for something
    it registered, or for a name nothing provides while it is skipped, names it in the error.
    """
    found = Registered()
    staged: list[tuple[str, str, Any, str]] = []  # (attr, kind, item, plugin), in registration order
    for hook_name, (attr, spec_type, kind) in _HOOKS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            plugin = impl.plugin_name
            if plugin in found.skipped:
                continue
            mine: list[tuple[str, str, Any, str]] = []

            def register(item: Any, _plugin: str = plugin, _attr=attr, _type=spec_type, _kind=kind,
                         _mine=mine, _hook=hook_name) -> None:
                if not isinstance(item, _type):
                    raise _WrongType(f"{_hook} registered a {type(item).__name__} as a {_kind}")
                _mine.append((_attr, _kind, item, _plugin))

            try:
                impl.function(register=register)
            except Exception as err:  # noqa: BLE001 - the plugin's bug: skip it, keep the others
                reason = str(err) if isinstance(err, _WrongType) else f"{hook_name} raised {_cause(err)}"
                found.skipped[plugin] = reason
                for a, _, item, _ in [*mine, *(s for s in staged if s[3] == plugin)]:
                    for name in (getattr(item, "name", None), *getattr(item, "aliases", ())):
                        if isinstance(name, str):
                            found.unavailable[(a, name)] = plugin
                staged = [s for s in staged if s[3] != plugin]
                log.warning(f"skipping plugin {plugin!r}: {reason}")
                continue
            staged += mine
    for attr, kind, item, plugin in staged:
        _add(found, attr, kind, item, plugin)
    return found


class _WrongType(Exception):
    """A plugin handed `register` something other than the hook's spec type."""


def load(registry: Registry) -> Registered:
    return collect(manager(registry))


def _add(found: Registered, attr: str, kind: str, item: Any, plugin: str) -> None:
    table = getattr(found, attr)
    names = [item.name, *getattr(item, "aliases", ())]
    for name in names:
        taken = table.get(name) is not None or name in found.aliases
        if taken:
            other = found.origin.get((attr, name)) or found.origin.get((attr, found.aliases.get(name, "")))
            raise UsageError(f"{kind} name {name!r} is registered twice: by plugin {other!r} and by {plugin!r}")
    table[item.name] = item
    found.origin[(attr, item.name)] = plugin
    for alias in getattr(item, "aliases", ()):
        found.aliases[alias] = item.name


def _import_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except Exception as err:  # noqa: BLE001
        raise UsageError(f"plugin {name!r} failed to import: {_cause(err)}") from None


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise UsageError(f"plugin file not found: {path}")
    if path.suffix != ".py":  # importlib finds no loader for it: a file plugin is Python source
        raise UsageError(f"plugin file {path} is not a .py file: list Python source in plugins.files")
    spec = importlib.util.spec_from_file_location(f"harness_file_plugin_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001
        raise UsageError(f"plugin {str(path)!r} failed to import: {_cause(err)}") from None
    return module


def _cause(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}".splitlines()[0]
