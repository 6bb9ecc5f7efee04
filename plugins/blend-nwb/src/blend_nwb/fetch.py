"""``blend fetch DATASET``: the pinned DANDI release of an NLB dataset, exactly the assets the examples use.

Needs the ``dandi`` client (``pip install 'blend-nwb[fetch]'``). Files land where
``dandi download`` would put them (``DIR/<dandiset>/sub-.../...nwb``), so the example
configs' ``data.path`` works from ``DIR``. A file already there with the size DANDI reports
is kept; downloads go to a temporary name first and are renamed when complete.
"""

from __future__ import annotations

from pathlib import Path

from blend_core.api import BlendError, atomic_write
from blend_nwb.nlb import SPECS


def fetch(dataset: str, directory: str | Path = ".") -> dict[str, Path]:
    """Download the train and test files of ``dataset``; returns ``{"train": path, "test": path}``."""
    if dataset not in SPECS:
        raise BlendError(f"blend fetch: unknown NLB dataset {dataset!r}; expected one of {', '.join(SPECS)}")
    spec = SPECS[dataset]
    try:
        from dandi.dandiapi import DandiAPIClient
    except ImportError:
        raise BlendError("blend fetch: the dandi client is not installed; "
                         "pip install 'blend-nwb[fetch]' (or: pip install dandi)") from None
    root = Path(directory) / spec.dandiset
    out = {}
    try:
        with DandiAPIClient() as client:
            remote = client.get_dandiset(spec.dandiset, spec.version)
            for role, asset_path in zip(("train", "test"), spec.assets()):
                asset = remote.get_asset_by_path(asset_path)
                local = root / asset_path
                if not (local.is_file() and local.stat().st_size == asset.size):
                    atomic_write(local, lambda tmp, a=asset: a.download(tmp))
                out[role] = local
    except BlendError:
        raise
    except Exception as exc:  # noqa: BLE001 - network, HTTP and client errors alike: one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BlendError(f"blend fetch {dataset}: cannot download DANDI:{spec.dandiset}/{spec.version} "
                         f"({type(exc).__name__}: {reason[:200]}); are you offline?") from None
    return out
