"""Training and data preparation (the `train` extra for distillation):

distiller.py   the distillation loop (teacher -> student)
students.py    builds a student pipeline from a teacher (layers kept, another encoder, or spaCy's CNN tok2vec)
teacher_cache.py  the teacher's soft targets computed once for a distillation
squad.py       the SQuAD reader (bertprod.SquadCorpus.v1)
converters.py  CoNLL-2003 and SST-2 files -> Docs / .spacy
logger.py      the console training logger (bertprod.ConsoleLogger.v1)
"""
