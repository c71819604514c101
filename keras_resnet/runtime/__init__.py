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


class LiteRTError(Exception):
    """A problem the user can fix, in one line: what is wrong and what to do."""


def reason(error):
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
