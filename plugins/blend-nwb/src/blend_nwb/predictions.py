"""Predictions back into NWB: a copy of the session with a ``processing/blend`` module."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from blend_core.data import NeuralData
from blend_core.errors import DataError

MODULE = "blend"


def write_predictions_nwb(
    src: Path, out: Path, predictions: dict[str, Any], trial_ids: np.ndarray, first_bins: np.ndarray,
    data: NeuralData,
) -> Path:
    """Copy ``src`` to ``out`` (atomically) and add one table row per predicted trial.

    ``processing/blend/predictions`` is a DynamicTable with columns ``trial`` (row of
    the trials table), ``window_start_time`` (s), and one column per predicted array
    (``rates``: bins x neurons in spikes per bin, held-in then held-out units in units-table
    order within each group; ``latents``: bins x features). The bin width and window
    layout are in the table's description.
    """
    from hdmf.common import DynamicTable, VectorData
    from pynwb import NWBHDF5IO

    n = len(trial_ids)
    arrays = {k: np.asarray(v) for k, v in predictions.items() if np.ndim(v) >= 1 and len(v) == n}
    if not arrays:
        raise DataError(f"{src}: no predictions with one entry per trial ({n}) to write")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        with NWBHDF5IO(tmp, "a") as io:
            nwb = io.read()
            if MODULE in nwb.processing:
                raise DataError(f"{src}: processing/{MODULE} already exists; predict from the original session")
            desc = (f"blend predictions: {data.window_bins} window + {data.fp_bins} forward bins of "
                    f"{data.bin_ms:g} ms per trial; rates in spikes per bin, held-in then held-out neurons")
            columns = [
                VectorData(name="trial", description="row of the trials table", data=np.asarray(trial_ids, np.int64)),
                VectorData(name="window_start_time", description="start of the first bin (s)",
                           data=np.asarray(first_bins, np.float64) * data.bin_ms / 1000.0),
            ]
            for k, v in arrays.items():
                columns.append(VectorData(name=k, description=f"predicted {k} per trial (bins x channels)",
                                          data=v.astype(np.float32)))
            table = DynamicTable(name="predictions", description=desc, columns=columns)
            mod = nwb.create_processing_module(MODULE, "BLEND model predictions (rates and latent features)")
            mod.add(table)
            io.write(nwb)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
