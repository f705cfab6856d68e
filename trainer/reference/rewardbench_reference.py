"""RewardBench reference for trainer's section-weighted scores (trainer/src/rm/rewardbench.rs).

Runs RewardBench's own `calculate_scores_per_section` over its own `EXAMPLE_COUNTS` and
`SUBSET_MAPPING` (the installed rewardbench 0.1.4 package's files, executed as they are) on
seeded per-pair results, and writes to trainer/reference/data/rm/rewardbench_cases.json:

  per case:
    results        [subset, correct] per pair (correct = chosen scored strictly higher)
    subsets        accuracy per subset, as rewardbench.py computes `results_grouped`
    sections       calculate_scores_per_section(EXAMPLE_COUNTS, SUBSET_MAPPING, subsets)
    example_counts, subset_mapping   upstream's tables, so the test checks them too

trainer/tests/rm_reference.rs replays each case through `trainer::rm::rewardbench::scores`.
Upstream reports an absent section as 0 where trainer leaves it out (module docs): the test
compares the sections present and checks that the absent ones are upstream's zeros.

rewardbench's `__init__` imports its model zoo, which needs packages unrelated to scoring,
so the two functions are read from the package's files: `constants.py` is executed whole
and `calculate_scores_per_section` is taken from `utils.py` by its syntax tree, unchanged.

Install (outside the repository; nothing is installed by this script), then run:

    python3 -m venv /work/venv-ref
    /work/venv-ref/bin/pip install --no-deps "rewardbench==0.1.4"
    /work/venv-ref/bin/python trainer/reference/rewardbench_reference.py
"""

import ast
import importlib.util
import json
import os
import random

spec = importlib.util.find_spec("rewardbench")
if spec is None or not spec.submodule_search_locations:
    raise SystemExit("rewardbench is not installed: see this script's docstring")
package = spec.submodule_search_locations[0]


def read(name):
    with open(os.path.join(package, name)) as f:
        return f.read()


constants = {}
exec(compile(read("constants.py"), "rewardbench/constants.py", "exec"), constants)
utils = ast.parse(read("utils.py"))
(fn,) = [n for n in utils.body if isinstance(n, ast.FunctionDef) and n.name == "calculate_scores_per_section"]
scope = {}
exec(compile(ast.Module(body=[fn], type_ignores=[]), "rewardbench/utils.py", "exec"), scope)
calculate_scores_per_section = scope["calculate_scores_per_section"]

EXAMPLE_COUNTS = constants["EXAMPLE_COUNTS"]
SUBSET_MAPPING = constants["SUBSET_MAPPING"]


def case(name, rng, subsets, per_subset, p_correct):
    results = []
    for s in subsets:
        n = rng.randint(1, per_subset)
        results += [[s, rng.random() < p_correct] for _ in range(n)]
    rng.shuffle(results)
    # rewardbench.py: results_grouped[subset] = num_correct / num_total
    grouped = {}
    for s in sorted({s for s, _ in results}):
        mine = [c for t, c in results if t == s]
        grouped[s] = sum(mine) / len(mine)
    return {
        "name": name,
        "results": results,
        "subsets": grouped,
        "sections": calculate_scores_per_section(EXAMPLE_COUNTS, SUBSET_MAPPING, grouped),
    }


rng = random.Random(20261204)
every = list(EXAMPLE_COUNTS)
cases = [
    case("all subsets", rng, every, 30, 0.7),
    case("all subsets, near chance", rng, every, 12, 0.5),
    case("one pair each", rng, every, 1, 0.6),
    case("chat and reasoning only", rng, SUBSET_MAPPING["Chat"] + SUBSET_MAPPING["Reasoning"], 20, 0.8),
    case("math-prm against one code subset", rng, ["math-prm", "hep-rust"], 40, 0.5),
    case("safety only", rng, SUBSET_MAPPING["Safety"], 25, 0.9),
]
out = {
    "source": "rewardbench 0.1.4: utils.calculate_scores_per_section, constants.EXAMPLE_COUNTS / SUBSET_MAPPING",
    "example_counts": EXAMPLE_COUNTS,
    "subset_mapping": SUBSET_MAPPING,
    "cases": cases,
}
path = os.path.join(os.path.dirname(__file__), "data", "rm", "rewardbench_cases.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print(f"wrote {len(cases)} cases to {path}")
