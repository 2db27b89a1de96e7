"""The spaCy components and what they need at prediction time (no torch
import; training code lives in training/):

ner.py              bertprod_ner: token classification with constrained BILUO decoding
textcat.py          bertprod_textcat (exclusive and multi-label)
qa.py               bertprod_qa: extractive question answering and its scorer
squad_metrics.py    the official SQuAD exact match and F1
decoding.py         BILUO tag names, transition constraints and Viterbi decoding
extensions.py       the Doc / Span extensions the components set
annotations.py      a Doc's annotations as JSON (served and batch-annotated output)
serialization.py    the components' from_disk, with coded errors for bad files
config_policy.py    the config wins over a saved `cfg` on load
distillation.py     the teacher-student protocol each component implements
displacy_colors.py  displaCy colours for the CoNLL labels
"""
