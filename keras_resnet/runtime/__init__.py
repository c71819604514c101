"""Running .tflite models with LiteRT, without TensorFlow: what convert/'s report and edge_demo/ share.

Nothing here imports TensorFlow or Keras (tests/test_edge_demo.py proves it), so a board with only
`pip install 'keras-resnet-edge[demo]'` (ai-edge-litert, numpy, Pillow) runs it:

- labels.py         class names packed inside a .tflite file, or read from a labels file
- pictures.py       which picture files training, classify.py and the page open
- metadata.py       what else the file carries: the evaluation transform, the GPU verdict, self-test pictures
- preprocessing.py  the evaluation transform every stage applies to a picture (here in Pillow)
- delegates.py      where a model runs: the CPU, a delegate library (GPU, Coral Edge TPU)
- model.py          one model on the interpreter: (de)quantization, probabilities, the latency loop
- gpu.py            one model on LiteRT's GPU accelerator, with model.py's methods
- selftest.py       the check of an accelerator's answers against the CPU's before they are shown
- classifier.py     a picture in, class names and scores out: what classify.py and serve.py run
- confusion.py      the confusion matrix of a model's answers, and its picture
- server.py         the browser demo's HTTP server: the model, its description, the page, LiteRT.js
"""

import re


class LiteRTError(Exception):
    """A problem the user can fix, in one line: what is wrong and what to do."""


def reason(error, *, limit=200, first_sentence=False):
    """An exception's reason in a few words, for the one-line messages the programs print: every
    layer words a caught exception with this.

    Args:
        error: the exception.
        limit: at most this many characters, cut between words (an ellipsis marks the cut).
        first_sentence: only the first sentence, for libraries that write several on one line
            (huggingface_hub).

    Returns:
        An OSError's strerror when it has one (the message around it names the path); otherwise the
        first line of the message with its spaces collapsed; the exception type's name when the
        message is empty.
    """
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    lines = str(error).strip().splitlines()
    text = " ".join(lines[0].split()) if lines else ""
    if first_sentence:
        text = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " …"
    return text or type(error).__name__
