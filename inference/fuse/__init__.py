"""`--combine fuse`: a gate fitted on dev that decides, per sent span, between the LLM's answer
and the local label, and abstains where the LLM does not pay (docs/fuse.md).

    model.py   what the gate reads of a span, and its plain-number linear models
    gate.py    the saved gate: one three-outcome model and dev's choice per budget
    shift.py   how much less often the local model is right on a run, from the LLM's agreement
    run.py     a run's adaptation, and each sent span's final label, decided once
    fit.py     fitting the gate on a labelled dev split
"""
