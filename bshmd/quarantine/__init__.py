"""The quarantine: inputs that could not become results, each with its reason, for a person.

``store`` puts an input in (``quarantine_input``, the one way in), ``record`` is what its
``.reason.json`` says, ``entries`` walks the tree and finds entries, ``actions`` is what a
person does with one (requeue, accept, reject, purge), ``undo`` takes an action back and
``marker`` is the accept-once marker the pipeline consumes. Below the pipeline and the review
page, which both use it; above the ledger and the outputs, which accept writes through.
"""
