"""Shell completion of what the registry and the configuration know: fusion, encoder and
dataset names, and ``--set`` keys (click's protocol: ``eval "$(_FUSION_BENCH_COMPLETE=bash_source
fusion-bench)"``; see docs/cli.md).

Completing must print nothing but candidates, and fast: the registry is built without messages
(a plugin that fails is left out) and names are read without importing torch; only the options
of one plugin (``--set fusion.rcma.``) import that plugin.
"""

from __future__ import annotations

from click.shell_completion import CompletionItem


def _registry(ctx):
    """The registry with the ``--plugin`` files of this command line; never prints."""
    from ..plugins import load_registry

    root = ctx.find_root()
    specs = tuple(root.params.get("plugins") or ())
    try:
        return load_registry(specs, strict=False)
    except Exception:  # noqa: BLE001 - completion offers nothing rather than a traceback
        return None


def names(kind: str):
    """A ``shell_complete`` callback: the registered names of ``kind`` (``"fusions"``...)."""

    def complete(ctx, param, incomplete: str) -> list[CompletionItem]:
        reg = _registry(ctx)
        if reg is None:
            return []
        return [CompletionItem(n) for n in reg.names(kind) if n.startswith(incomplete)]

    return complete


def fusion_list(ctx, param, incomplete: str) -> list[CompletionItem]:
    """``sweep --fusion a,b,``: the last name of a comma-separated list."""
    done, comma, last = incomplete.rpartition(",")
    head = done + comma
    listed = set(done.split(",")) if done else set()
    reg = _registry(ctx)
    if reg is None:
        return []
    return [CompletionItem(head + n) for n in reg.names("fusions")
            if n.startswith(last) and n not in listed]


def presets(ctx, param, incomplete: str) -> list[CompletionItem]:
    from ..config import PRESETS

    return [CompletionItem(n) for n in PRESETS if n.startswith(incomplete)]


def set_keys(ctx, param, incomplete: str) -> list[CompletionItem]:
    """``--set KEY=VALUE``: the configuration's keys, then ``<kind>.<name>.`` for every
    registered plugin of a kind with options, then, once one is typed, that plugin's options."""
    from ..config import PLUGIN_KINDS, all_keys

    if "=" in incomplete:  # a value: nothing known to offer
        return []
    kind, _, rest = incomplete.partition(".")
    if kind in PLUGIN_KINDS and "." in rest:  # fusion.rcma.<option>: import this one plugin
        name = rest.split(".", 1)[0]
        return [CompletionItem(k) for k in _plugin_keys(ctx, kind, name) if k.startswith(incomplete)]
    keys = [k for k in all_keys() if "<" not in k]
    reg = _registry(ctx)
    if reg is not None:
        from ..options import KINDS

        keys += [f"{k}.{n}." for k in PLUGIN_KINDS for n in reg.names(KINDS[k][0])]
    return [CompletionItem(k) for k in keys if k.startswith(incomplete)]


def _plugin_keys(ctx, kind: str, name: str) -> list[str]:
    """``<kind>.<name>.<option>`` of one plugin (imports it); none if it does not load."""
    from ..options import KINDS, plugin_parameters

    reg = _registry(ctx)
    try:
        obj = reg.get(KINDS[kind][0], name).obj if reg is not None else None
        return [f"{kind}.{name}.{o.name}" for o in plugin_parameters(kind, obj)] if obj else []
    except Exception:  # noqa: BLE001 - an unknown or broken plugin: no candidates
        return []
