"""Power and sample size by simulation: participants per culture needed to detect a log-worth difference.

One culture is simulated with the design's pages and pages per participant. Model ``a`` (by default the design's
last model) has population log-worth ``worth_difference`` above every other model; participants' own log-worths
scatter around the population's with standard deviation ``heterogeneity``, and each image (page × model) has its own
log-worth shift with standard deviation ``page_sd`` (pages are a sample of stimuli). Each simulated study is analysed
as the report analyses a culture: the classic participant-level tests (pairwise Wilcoxon of ``a`` against ``b``, by
default the first model, on participants' mean ranks, Holm-adjusted over all pairs; the Friedman test) and the
report's headline test (``crossed``: crossed-bootstrap Wald test of equal mean ranks, ``analysis.headline``). Power is
the share of simulated studies in which the test rejects at ``alpha``. With page variance the classic tests reject a
true null too often, so their "power" is inflated by false positives; plan with ``crossed``.

``--pilot responses.csv`` estimates both SDs from a pilot (``analysis.variance``) instead of assuming them.

CLI: ``python -m analysis.power --design study_designs/x.toml --worth-difference 0.5 [--pilot responses.csv]``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from tqdm import tqdm

from analysis.simulate import StudySpec, as_spec, simulate_responses
from study_designs.schema import Design, DesignError, load_design

TESTS = ("wilcoxon", "friedman", "crossed")
DEFAULT_HETEROGENEITY = 0.5
CROSSED_BOOT = 200  # resamples per simulated study for the crossed test's covariance (its p uses an F reference)


@dataclass(frozen=True)
class PowerSetup:
    """A one-culture, one-criterion study in which model ``a`` is ``worth_difference`` above the rest."""

    spec: StudySpec
    culture: str
    criterion: str
    a: str
    b: str
    worth_difference: float
    heterogeneity: float
    page_sd: float = 0.0

    @property
    def worths(self) -> dict[str, float]:
        return {m: (self.worth_difference if m == self.a else 0.0) for m in self.spec.models}


@dataclass(frozen=True)
class PowerResult:
    participants: int | None  # smallest number per culture reaching the target power; None if not within the search
    target_power: float
    alpha: float
    test: str
    curve: pd.DataFrame  # participants, power, ci_lo, ci_hi, power_wilcoxon, power_friedman, power_crossed, n_sim
    setup: PowerSetup


def make_setup(
    design: Design | StudySpec,
    *,
    worth_difference: float,
    criterion: str | None = None,
    culture: str | None = None,
    compare: tuple[str, str] | None = None,
    heterogeneity: float = DEFAULT_HETEROGENEITY,
    page_sd: float = 0.0,
) -> PowerSetup:
    spec = as_spec(design)
    criterion = criterion or spec.criteria[0]
    if criterion not in spec.criteria:
        raise ValueError(f"unknown criterion {criterion!r}; the design has {list(spec.criteria)}")
    if culture is None:  # the culture with the fewest pages: the most conservative answer
        culture = min(spec.cultures, key=lambda c: len(spec.pages[c]))
    if culture not in spec.cultures:
        raise ValueError(f"unknown culture {culture!r}; the design has {list(spec.cultures)}")
    a, b = compare or (spec.models[-1], spec.models[0])
    for m in (a, b):
        if m not in spec.models:
            raise ValueError(f"unknown model {m!r}; the design has {list(spec.models)}")
    if a == b:
        raise ValueError("compare two different models")
    if not math.isfinite(worth_difference):
        raise ValueError("worth_difference must be a finite number")
    one = replace(
        spec,
        cultures=(culture,),
        criteria=(criterion,),
        pages={culture: spec.pages[culture]},
        attention_checks=0,
        repeat_pages=0,
    )
    if not (math.isfinite(page_sd) and page_sd >= 0):
        raise ValueError("page_sd must be a finite number >= 0")
    return PowerSetup(one, culture, criterion, a, b, float(worth_difference), float(heterogeneity), float(page_sd))


def simulate_tests(
    setup: PowerSetup, participants: int, *, seed: int | Sequence[int], tests: Sequence[str] = TESTS
) -> dict[str, float]:
    """One simulated study of ``participants`` raters: p-value per test (``wilcoxon`` = Holm p of a vs b)."""
    from analysis import stats

    df = simulate_responses(
        setup.spec,
        participants_per_culture=participants,
        worths=setup.worths,
        heterogeneity=setup.heterogeneity,
        page_sd=setup.page_sd,
        seed=int(np.random.SeedSequence(seed).generate_state(1)[0]),
    )
    out = {}
    if "wilcoxon" in tests:
        pairs = stats.pairwise_wilcoxon(df)
        a, b = pairs["a"].astype(str), pairs["b"].astype(str)
        hit = pairs[((a == setup.a) & (b == setup.b)) | ((a == setup.b) & (b == setup.a))]
        out["wilcoxon"] = float(hit["p_holm"].iloc[0]) if len(hit) else float("nan")
    if "friedman" in tests:
        out["friedman"] = float(stats.friedman(df)["p"])
    if "crossed" in tests:
        out["crossed"] = crossed_p(df)
    return out


def crossed_p(df: pd.DataFrame, n_boot: int = CROSSED_BOOT, seed: int = 0) -> float:
    """The report's headline p (crossed-bootstrap Wald test of equal mean ranks) for one criterion's rows."""
    from analysis import headline
    from analysis._tables import RankTable
    from analysis.crossed import Resampler

    t = RankTable.from_long(df)
    r, pages = Resampler.for_table(df, t, n_boot, seed)
    point = np.nanmean(np.where(t.present, t.ranks, np.nan), axis=0)
    return float(headline.omnibus(point, r.mean_ranks(t), t.n_participants, len(pages))["p"])


def power_at(
    setup: PowerSetup,
    participants: int,
    *,
    alpha: float = 0.05,
    n_sim: int = 200,
    seed: int = 0,
    tests: Sequence[str] = TESTS,
    on_sim: Callable[[], None] | None = None,
) -> dict:
    """Power of each test at ``participants`` per culture, from ``n_sim`` seeded simulated studies.

    Tests not in ``tests`` get NaN power. Study ``i`` at ``n`` participants uses seed ``(seed, n, i)`` whatever else
    is evaluated, so results are reproducible and comparable across numbers of participants.
    """
    if participants < 2:
        raise ValueError("at least 2 participants per culture are needed for a paired test")
    if n_sim < 1:
        raise ValueError("n_sim must be at least 1")
    for t in tests:
        _check_test(t)
    rejected = {t: np.zeros(n_sim, dtype=bool) for t in tests}
    for i in range(n_sim):
        p = simulate_tests(setup, participants, seed=(seed, participants, i), tests=tests)
        for t in tests:
            rejected[t][i] = np.nan_to_num(p[t], nan=1.0) < alpha
        if on_sim is not None:
            on_sim()
    out: dict = {"participants": participants}
    for t in TESTS:
        out[f"power_{t}"] = float(rejected[t].mean()) if t in rejected else float("nan")
    out["n_sim"] = n_sim
    return out


def _with_ci(rows: list[dict], test: str) -> pd.DataFrame:
    curve = pd.DataFrame(rows).sort_values("participants").reset_index(drop=True)
    curve.insert(1, "power", curve[f"power_{test}"])
    lo, hi = zip(*(wilson(p, n) for p, n in zip(curve["power"], curve["n_sim"], strict=True)), strict=True)
    curve.insert(2, "ci_lo", lo)
    curve.insert(3, "ci_hi", hi)
    return curve


def wilson(share: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a simulated power (Monte Carlo uncertainty)."""
    if n <= 0:
        return float("nan"), float("nan")
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def power_curve(
    design: Design | StudySpec,
    *,
    worth_difference: float,
    participants: Sequence[int] = (4, 8, 12, 16, 24, 32, 48, 64),
    criterion: str | None = None,
    culture: str | None = None,
    compare: tuple[str, str] | None = None,
    heterogeneity: float = DEFAULT_HETEROGENEITY,
    page_sd: float = 0.0,
    alpha: float = 0.05,
    n_sim: int = 200,
    seed: int = 0,
    test: str = "wilcoxon",
    both: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """Simulated power at each number of participants per culture (columns: participants, power, ci_lo, ci_hi,
    power_wilcoxon, power_friedman, power_crossed, n_sim); ``power`` is the chosen ``test``'s (the others are computed
    too when ``both``, NaN otherwise)."""
    _check_test(test)
    setup = make_setup(
        design,
        worth_difference=worth_difference,
        criterion=criterion,
        culture=culture,
        compare=compare,
        heterogeneity=heterogeneity,
        page_sd=page_sd,
    )
    ns = sorted(set(int(n) for n in participants))
    with tqdm(total=len(ns) * n_sim, desc="power simulations", unit="study", disable=not progress) as bar:
        rows = [
            power_at(setup, n, alpha=alpha, n_sim=n_sim, seed=seed, tests=_tests(test, both), on_sim=bar.update)
            for n in ns
        ]
    return _with_ci(rows, test)


def participants_needed(
    design: Design | StudySpec,
    *,
    worth_difference: float,
    alpha: float = 0.05,
    power: float = 0.8,
    n_sim: int = 200,
    seed: int = 0,
    criterion: str | None = None,
    culture: str | None = None,
    compare: tuple[str, str] | None = None,
    heterogeneity: float = DEFAULT_HETEROGENEITY,
    page_sd: float = 0.0,
    test: str = "wilcoxon",
    both: bool = True,
    max_participants: int = 512,
    progress: bool = True,
) -> PowerResult:
    """Smallest number of participants per culture whose simulated power reaches ``power``.

    Grows the number (3, 4, 6, 8, 12, 16, 24, ...) until the power is reached, then bisects between the last number
    that fell short and the first that reached it; the answer is the smallest evaluated number from which every
    larger evaluated number reaches the power. Each evaluated number uses ``n_sim`` seeded studies, so the answer is
    reproducible for a seed and carries the Monte Carlo error shown in the curve's ``ci_lo``/``ci_hi``.
    """
    _check_test(test)
    if not 0 < power < 1:
        raise ValueError("power must be between 0 and 1")
    if not 0 < alpha < 1:
        raise ValueError("alpha must be between 0 and 1")
    setup = make_setup(
        design,
        worth_difference=worth_difference,
        criterion=criterion,
        culture=culture,
        compare=compare,
        heterogeneity=heterogeneity,
        page_sd=page_sd,
    )
    results: dict[int, dict] = {}
    bar = tqdm(total=0, desc="power simulations", unit="study", disable=not progress)

    def evaluate(n: int) -> float:
        if n not in results:
            bar.total += n_sim
            bar.refresh()
            results[n] = power_at(
                setup, n, alpha=alpha, n_sim=n_sim, seed=seed, tests=_tests(test, both), on_sim=bar.update
            )
        return results[n][f"power_{test}"]

    try:
        lo, hi = 2, None
        for n in _ladder(max_participants):
            if evaluate(n) >= power:
                hi = n
                break
            lo = n
        if hi is not None:
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if evaluate(mid) >= power:
                    hi = mid
                else:
                    lo = mid
    finally:
        bar.close()
    curve = _with_ci(list(results.values()), test)
    return PowerResult(_first_sustained(curve, power) if hi is not None else None, power, alpha, test, curve, setup)


def _first_sustained(curve: pd.DataFrame, target: float) -> int | None:
    """Smallest evaluated number from which every larger evaluated number also reaches ``target`` (Monte Carlo
    noise can make a single number pass by luck)."""
    ok = (curve["power"] >= target).to_numpy()[::-1]
    run = np.logical_and.accumulate(ok)[::-1]
    return int(curve["participants"][run].min()) if run.any() else None


def _ladder(maximum: int) -> list[int]:
    out, n = [], 3
    while n < maximum:
        out.append(n)
        n = n + 1 if n < 4 else int(n * 1.5) if (n & (n - 1)) == 0 else (n // 3) * 4
    return [*out, maximum]


def _tests(test: str, both: bool) -> tuple[str, ...]:
    return TESTS if both else (test,)


def _check_test(test: str) -> None:
    if test not in TESTS:
        raise ValueError(f"test must be one of {TESTS}, got {test!r}")


# --------------------------------------------------------------------------------------------------------- CLI
def format_result(result: PowerResult, design: Design | None = None) -> str:
    s = result.setup
    label = (design and {m.id: m.label for m in design.models}) or {}
    test_name = {
        "wilcoxon": f"Wilcoxon {label.get(s.a, s.a)} vs {label.get(s.b, s.b)} (Holm)",
        "friedman": "Friedman",
        "crossed": "crossed-bootstrap headline test",
    }[result.test]
    lines = [
        f"culture {s.culture} ({len(s.spec.pages[s.culture])} pages, "
        f"{min(s.spec.pages_per_participant, len(s.spec.pages[s.culture]))} per participant), criterion {s.criterion}",
        f"log-worth of {label.get(s.a, s.a)} = {s.worth_difference:+g} against every other model; "
        f"participant sd {s.heterogeneity:.3g}; page × model sd {s.page_sd:.3g}; alpha {result.alpha:g}",
        "",
        f"{'participants':>12}  {'power':>6}  {'95% MC interval':>16}  {'Wilcoxon':>8}  {'Friedman':>8}  {'crossed':>8}"
        f"  {'sims':>5}",
    ]
    for r in result.curve.itertuples(index=False):
        lines.append(
            f"{r.participants:>12}  {r.power:>6.1%}  {f'{r.ci_lo:.0%} – {r.ci_hi:.0%}':>16}  "
            f"{r.power_wilcoxon:>8.1%}  {r.power_friedman:>8.1%}  {r.power_crossed:>8.1%}  {r.n_sim:>5}"
        )
    lines.append("")
    if result.participants is None:
        top = int(result.curve["participants"].max())
        lines.append(f"{result.target_power:.0%} power ({test_name}) was not reached with up to {top} participants.")
    else:
        lines.append(
            f"About {result.participants} participants per culture give {result.target_power:.0%} power "
            f"({test_name}) to detect a log-worth difference of {s.worth_difference:g}."
        )
    if design is not None:
        need = design.participants_needed(s.culture)
        lines.append(f"(The design's coverage target alone needs {need} participants of {s.culture}.)")
    return "\n".join(lines)


def pilot_sds(path: str, design: Design, criterion: str | None) -> tuple[float, float, str]:
    """(participant sd, page × model sd, a line saying what was estimated) from a pilot ``responses.csv``."""
    from analysis.load import apply_exclusions, read_responses
    from analysis.variance import log_worth_sds, rank_components

    rows, _ = apply_exclusions(read_responses(path))
    criterion = criterion or design.criteria[0].id
    sub = rows[rows["criterion"].astype(str).to_numpy() == criterion]
    if len(sub) == 0:
        raise ValueError(f"the pilot has no rankings of criterion {criterion!r}")
    comp = rank_components(sub)
    k = int(sub["model_id"].nunique())
    h, s = log_worth_sds(comp, k)
    line = (
        f"pilot {path}: {comp.n_participants} participants, {comp.n_pages} pages, {comp.n_judgments} rankings of "
        f"{criterion}; rank variance participant {comp.participant:.3f}, page × model {comp.page:.3f}, residual "
        f"{comp.residual:.3f} -> log-worth sd participant {h:.3f}, page × model {s:.3f}"
    )
    return h, s, line


PROG = "python -m analysis.power"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Participants per culture needed to detect a Plackett–Luce log-worth difference, by simulation.",
    )
    p.add_argument("--design", required=True, help="study design TOML")
    p.add_argument("--worth-difference", type=float, required=True, help="log-worth of model A above the others")
    p.add_argument("--criterion", help="criterion id (default: the design's first)")
    p.add_argument("--culture", help="culture id (default: the one with the fewest pages)")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="models to compare (default: last vs first)")
    p.add_argument("--heterogeneity", type=float, default=DEFAULT_HETEROGENEITY, help="sd of participants' worths")
    p.add_argument("--page-sd", type=float, default=0.0, help="sd of images' (page × model) worths")
    p.add_argument(
        "--pilot",
        help="pilot responses.csv: estimate --heterogeneity and --page-sd from it (for the chosen criterion)",
    )
    p.add_argument(
        "--test", choices=TESTS, default="wilcoxon", help="test run on each simulated study (default wilcoxon)"
    )
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    p.add_argument("--power", type=float, default=0.8, help="power to reach (default 0.8)")
    p.add_argument("--sims", type=int, default=200, help="simulated studies per number of participants")
    p.add_argument("--max-participants", type=int, default=512, help="largest number per culture to try (default 512)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the simulations (default 0)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        design = load_design(args.design)
        heterogeneity, page_sd = args.heterogeneity, args.page_sd
        if args.pilot:
            heterogeneity, page_sd, pilot_line = pilot_sds(args.pilot, design, args.criterion)
            print(pilot_line)
        result = participants_needed(
            design,
            worth_difference=args.worth_difference,
            alpha=args.alpha,
            power=args.power,
            n_sim=args.sims,
            seed=args.seed,
            criterion=args.criterion,
            culture=args.culture,
            compare=tuple(args.compare) if args.compare else None,
            heterogeneity=heterogeneity,
            page_sd=page_sd,
            test=args.test,
            max_participants=args.max_participants,
        )
    except (DesignError, ValueError) as err:  # bad arguments or an invalid design/pilot file
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a file cannot be read: a runtime failure
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    print(format_result(result, design))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
