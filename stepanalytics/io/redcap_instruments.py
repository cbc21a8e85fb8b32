"""REDCap forms to the items and assessments tables.

Each mapped instrument reads its form's instances (see
:mod:`stepanalytics.io.redcap_forms` for presence, status and day rules),
then:

* item fields are read as numbers, or through ``item_values`` when the
  project codes answers differently from the published scale (e.g. 1-4 for
  a 0-3 item); a checkbox field gives one item per choice code (ticked = 1,
  unticked = 0; RMDQ's "unticked = no"), and a ticked missing-data choice
  (``rmdq_items___unk``) leaves every item of that instance unanswered;
* a missing-data code in an item leaves that item unanswered, reported;
  in a score field it means no given score, reported;
* an instance with no answered item and no score is dropped, reported;
* answers and scores outside the instrument's range in the registry stop the
  import with the rows listed (never clipped);
* two instances for one patient, instrument and day: the later export row
  is kept and the earlier reported (``rules.duplicates: keep_last``), or
  the import stops (``error``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stepanalytics.errors import Problem
from stepanalytics.instruments import Registry
from stepanalytics.io.redcap_dictionary import checkbox_column
from stepanalytics.io.redcap_export import ticked
from stepanalytics.io.redcap_forms import FormContext
from stepanalytics.io.redcap_mapping import InstrumentSource
from stepanalytics.io.values import add_found, recode, where_none

ITEM_COLUMNS = ["record_code", "day", "instrument", "item", "value", "position"]
SCORE_COLUMNS = ["record_code", "day", "instrument", "score", "position"]


def _item_matrix(
    ctx: FormContext, inst: InstrumentSource, positions: np.ndarray, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """Item values (instances x item numbers 1..n_items) and the item numbers used."""
    if inst.checkbox is not None:
        return _checkbox_items(ctx, inst, positions, n_items)
    numbers = np.array(sorted(inst.items.values()), dtype=np.int64)
    matrix = np.full((len(positions), len(numbers)), np.nan)
    for field_name, number in inst.items.items():
        col = int(np.searchsorted(numbers, number))
        if inst.item_values is not None:
            coded = recode(
                ctx.column(field_name),
                {k: v for k, v in inst.item_values.items()},
                missing_codes=ctx.mapping.missing_codes,
            )
            values = pd.Series(coded.values, dtype=object).to_numpy(dtype=float, na_value=np.nan)
            unknown = coded.unknown & ctx.usable
            if unknown.any():
                add_found(
                    ctx.problems,
                    Problem.from_mask(
                        "export",
                        field_name,
                        ctx.rows.frame,
                        unknown,
                        f"answer codes not in instruments.{inst.code}.item_values",
                        "add the codes to item_values in the mapping",
                        values=ctx.column(field_name),
                    ),
                )
            missing = coded.missing_code
        else:
            parsed = ctx.numbers(field_name)
            values, missing = parsed.values, parsed.missing_code
        matrix[:, col] = values[positions]
        ctx.missing_code_lines(positions, field_name, missing[positions], "item not answered")
    return matrix, numbers


def _checkbox_items(
    ctx: FormContext, inst: InstrumentSource, positions: np.ndarray, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    checkbox = inst.checkbox or ""
    choices = ctx.dictionary.choices(checkbox)
    numbers = []
    for code in choices:
        if not code.isdigit() or not 1 <= int(code) <= n_items:
            ctx.problems.append(
                Problem(
                    "mapping",
                    f"instruments.{inst.code}.checkbox",
                    f"checkbox '{checkbox}' has choice code {code!r}, "
                    f"not an item number 1..{n_items}",
                    "code each checkbox choice with its item number",
                )
            )
            continue
        numbers.append(int(code))
    numbers_arr = np.array(sorted(numbers), dtype=np.int64)
    matrix = np.zeros((len(positions), len(numbers_arr)))
    for number in numbers_arr:
        col = int(np.searchsorted(numbers_arr, number))
        matrix[:, col] = ticked_at(ctx, checkbox_column(checkbox, str(number)), positions)
    for code in ctx.mapping.missing_codes:
        column = checkbox_column(checkbox, code)
        if column in ctx.rows.frame.columns:
            hit = ticked_at(ctx, column, positions).astype(bool)
            matrix[hit, :] = np.nan
            coded = where_none(hit, np.full(len(hit), code, dtype=object))
            ctx.missing_code_lines(positions, column, coded, "all items of the form not answered")
    return matrix, numbers_arr


def ticked_at(ctx: FormContext, column: str, positions: np.ndarray) -> np.ndarray:
    """Checkbox column ticked (1.0) or not (0.0) at the given row positions."""
    return ticked(ctx.column(column))[positions].astype(float)


def _range_problems(
    ctx: FormContext,
    column_of: dict[int, str],
    positions: np.ndarray,
    matrix: np.ndarray,
    low: float,
    high: float | None,
    integer: bool,
    what: str,
) -> None:
    upper = np.inf if high is None else high
    for col, field_name in column_of.items():
        values = matrix[:, col]
        bad = ~np.isnan(values) & ((values < low) | (values > upper))
        if integer:
            bad |= ~np.isnan(values) & (values != np.round(values))
        if bad.any():
            mask = np.zeros(ctx.rows.n, dtype=bool)
            mask[positions[bad]] = True
            shown = "no upper limit" if high is None else f"{high:g}"
            add_found(
                ctx.problems,
                Problem.from_mask(
                    "export",
                    field_name,
                    ctx.rows.frame,
                    mask,
                    f"{what} outside the range {low:g} to {shown}"
                    + (" or not whole" if integer else ""),
                    "correct the values in REDCap, or recode the project's answer codes with "
                    "item_values in the mapping; values are never clipped",
                    values=ctx.column(field_name),
                ),
            )


def read_instrument(
    ctx: FormContext, inst: InstrumentSource, registry: Registry
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Items and given scores of one mapped instrument (before duplicate handling)."""
    part = f"instrument {inst.code}"
    item_fields = list(inst.items)
    checkbox_cols: list[str] = []
    if inst.checkbox is not None:
        checkbox_cols = [c for c in ctx.rows.frame.columns if c.startswith(f"{inst.checkbox}___")]
    value_fields = item_fields + ([inst.score] if inst.score else [])
    present = ctx.filled(value_fields, checkbox_cols)
    positions, accepted = ctx.instances(inst.form, present, part)
    positions = positions[accepted]
    day, has_day = ctx.days(positions, inst.date_field, part)
    positions, day = positions[has_day], day[has_day]
    n = len(positions)
    has_items = bool(item_fields) or inst.checkbox is not None
    if has_items:
        questionnaire = registry.questionnaire(inst.code)
        matrix, numbers = _item_matrix(ctx, inst, positions, questionnaire.n_items)
        if inst.checkbox is None:
            fields = {int(np.searchsorted(numbers, num)): f for f, num in inst.items.items()}
            _range_problems(
                ctx,
                fields,
                positions,
                matrix,
                questionnaire.item_min,
                questionnaire.item_max,
                questionnaire.integer_items,
                "item answers",
            )
    else:
        matrix, numbers = np.empty((n, 0)), np.empty(0, dtype=np.int64)
    score = np.full(n, np.nan)
    if inst.score is not None:
        parsed = ctx.numbers(inst.score)
        score = parsed.values[positions]
        ctx.missing_code_lines(
            positions, inst.score, parsed.missing_code[positions], "no given score"
        )
        spec = registry.get(inst.code)
        _range_problems(
            ctx,
            {0: inst.score},
            positions,
            score[:, None],
            spec.score_min,
            spec.score_max,
            False,
            "scores",
        )
    answered = ~np.isnan(score) | (~np.isnan(matrix)).any(axis=1)
    ctx.lines.add(positions[~answered], part, "dropped", "no item answered and no score given")
    positions, day, score, matrix = (
        positions[answered],
        day[answered],
        score[answered],
        matrix[answered],
    )
    codes = ctx.rows.record_code[positions]
    k = len(numbers)
    items = pd.DataFrame(
        {
            "record_code": np.repeat(codes, k),
            "day": np.repeat(day, k).astype(np.int64),
            "instrument": inst.code,
            "item": np.tile(numbers, len(positions)),
            "value": matrix.ravel(),
            "position": np.repeat(positions, k),
        }
    )
    given = ~np.isnan(score)
    scores = pd.DataFrame(
        {
            "record_code": codes[given],
            "day": day[given].astype(np.int64),
            "instrument": inst.code,
            "score": score[given],
            "position": positions[given],
        }
    )
    return items, scores


def imported_lines(
    ctx: FormContext, inst: InstrumentSource, items: pd.DataFrame, scores: pd.DataFrame
) -> None:
    """One ``imported`` line per form instance that reached the cohort."""
    mine = [f.loc[f["instrument"] == inst.code, "position"] for f in (items, scores)]
    positions = np.unique(np.concatenate([m.to_numpy(dtype=np.int64) for m in mine]))
    with_items = bool(inst.items) or inst.checkbox is not None
    what = "items and score" if with_items and inst.score else ("items" if with_items else "score")
    ctx.lines.add(positions, f"instrument {inst.code}", "imported", f"{what} of {inst.code}")


def drop_duplicates(
    ctx: FormContext, items: pd.DataFrame, scores: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep one form instance per (patient, instrument, day): the later export row."""
    keys = pd.concat(
        [
            items[["record_code", "day", "instrument", "position"]],
            scores[["record_code", "day", "instrument", "position"]],
        ],
        ignore_index=True,
    ).drop_duplicates()
    keys = keys.sort_values("position", kind="stable")
    later = keys.duplicated(["record_code", "day", "instrument"], keep="last")
    if not later.any():
        return items, scores
    losers = keys[later]
    winners = keys[~later].set_index(["record_code", "day", "instrument"])["position"]
    kept_row = winners.reindex(
        pd.MultiIndex.from_frame(losers[["record_code", "day", "instrument"]])
    )
    if ctx.mapping.rules.duplicates == "error":
        mask = np.zeros(ctx.rows.n, dtype=bool)
        mask[losers["position"].to_numpy()] = True
        mask[kept_row.to_numpy()] = True
        add_found(
            ctx.problems,
            Problem.from_mask(
                "export",
                None,
                ctx.rows.frame,
                mask,
                "the same instrument twice for one patient on one day",
                "remove the repeated form in REDCap, or set rules.duplicates: keep_last",
            ),
        )
        return items, scores
    rows = ctx.rows.rows[kept_row.to_numpy()]
    for inst_code in pd.unique(losers["instrument"]):
        sel = (losers["instrument"] == inst_code).to_numpy()
        reasons = np.array(
            [
                f"same patient, instrument and day as row {r}: the later row was kept"
                for r in rows[sel]
            ],
            dtype=object,
        )
        positions = losers["position"].to_numpy()[sel]
        ctx.lines.add(positions, f"instrument {inst_code}", "dropped", reasons)
    drop = set(zip(losers["position"], losers["instrument"], strict=True))

    def keep(frame: pd.DataFrame) -> pd.DataFrame:
        pairs = pd.MultiIndex.from_arrays([frame["position"], frame["instrument"]])
        return frame[~pairs.isin(list(drop))]

    return keep(items), keep(scores)
