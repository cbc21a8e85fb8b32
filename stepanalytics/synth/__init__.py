"""A synthetic stepped-care cohort with known truth, for demos, tests and benchmarks.

The generator simulates what real data looks like: clinics of very
different sizes (a few truly different), enrolment over two years with
censoring at an extract date, phase stays with progression, step-downs,
safety pauses and competing dropout, visits every four weeks with missed
visits (more among those who later drop out), item-level questionnaire
answers with unanswered items, flare-ups and red flags.  The parameters it
used are returned (and written as ``truth.json``) so that analyses can be
checked against them.  Only synthetic data is ever committed.
"""

from stepanalytics.synth.generate import (
    SynthConfig,
    synthesize_cohort,
    synthesize_tables,
    write_synthetic_cohort,
)

__all__ = ["SynthConfig", "synthesize_cohort", "synthesize_tables", "write_synthetic_cohort"]
