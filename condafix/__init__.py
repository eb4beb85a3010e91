"""condafix: make CUDA work in conda environments.

Pipeline, one module per job:

    driver.py     what the driver supports (NVML -> libcuda -> nvidia-smi, or an override)
    envinfo.py    what the environment holds (conda-meta records, history, pip CUDA wheels)
    knowledge.py  the CUDA tables (package data with sources): PTX ISA, drivers, conda-forge versions
    verdict.py    driver + environment -> findings and the fix to run
    explain.py    an error message (+ live detection) -> which side is newer and the fix
    cli.py        typer commands: parse arguments, call the core, hand dataclasses to render.py
    render.py     the only module that prints (text or a versioned JSON envelope)

Core modules return frozen dataclasses; they are also the ``--json`` schema.
"""

from __future__ import annotations

__version__ = "0.1.0"
