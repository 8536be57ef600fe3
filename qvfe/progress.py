"""Progress display: a tqdm bar on a terminal, plain periodic lines otherwise (logs, CI, pipes)."""

from __future__ import annotations

import math
import sys
import time

from tqdm import tqdm


class Progress:
    """Shows step, objective ± error, acceptance and ETA; ``enabled=None`` picks by isatty."""

    def __init__(self, total: int, start: int, objective: str, unit: str,
                 enabled: bool | None = None, print_every: int = 50, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if enabled is None else enabled
        self.total, self.start, self.objective, self.unit = total, start, objective, unit
        self.print_every = print_every
        self.t0 = time.perf_counter()
        self.bar = None
        if self.tty and total > start:
            self.bar = tqdm(total=total, initial=start, file=self.stream, dynamic_ncols=True,
                            unit="step")

    def describe(self, metrics: dict[str, float]) -> str:
        parts = []
        f = metrics.get(self.objective)
        if f is not None:
            err = metrics.get(f"{self.objective}_err")
            parts.append(f"{self.objective} = {f:.6f}" + (f" ± {err:.6f}" if err is not None
                                                           and math.isfinite(err) else "")
                         + f" {self.unit}")
        if "acceptance" in metrics:
            parts.append(f"acc {metrics['acceptance']:.2f}")
        return "  ".join(parts)

    def update(self, step: int, metrics: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix_str(self.describe(metrics), refresh=False)
        elif step % self.print_every == 0 or step == self.total:
            elapsed = time.perf_counter() - self.t0
            done = step - self.start
            eta = elapsed / done * (self.total - step) if done else float("nan")
            print(f"step {step}/{self.total}  {self.describe(metrics)}  "
                  f"{elapsed:.1f} s  eta {eta:.0f} s", file=self.stream, flush=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
