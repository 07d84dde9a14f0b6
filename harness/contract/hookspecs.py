"""The hooks a plugin implements. Each receives a `register` callable and calls it once per thing.

A plugin is any module (or object) with functions marked `@harness.hookimpl`::

    from harness import KDMethod, hookimpl

    @hookimpl
    def register_kd_methods(register):
        register(KDMethod(name="my-kd", ...))

The built-ins in `plugins/` are registered exactly like this, by module name
(`harness.config.plugins.DEFAULT_PLUGINS`); `registry.toml` adds modules and files, and installed
packages are found through the `harness` entry-point group.
"""

import pluggy

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")


@hookspec
def register_model_families(register):
    """Register model families: `register(ModelFamily(...))`."""


@hookspec
def register_datasets(register):
    """Register datasets: `register(Dataset(...))`."""


@hookspec
def register_kd_methods(register):
    """Register knowledge-distillation methods: `register(KDMethod(...))`."""


@hookspec
def register_attacks(register):
    """Register membership-inference attacks: `register(Attack(...))`."""
