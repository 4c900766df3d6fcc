"""Typed errors. Every error the package raises on purpose derives from `SemanticIQAError`.

The classes also derive from the matching built-in (`ValueError`, `FileNotFoundError`) so
code that already catches those keeps working.
"""

from __future__ import annotations

import json


class SemanticIQAError(Exception):
    """Base class of every error raised on purpose by semantic-iqa."""


class InvalidInputError(SemanticIQAError, ValueError):
    """An image argument has the wrong type, rank, channel count, value range or batch size."""


class ImageLoadError(InvalidInputError):
    """An image could not be turned into pixels: corrupt bytes, unsupported mode, zero size."""


class ImageNotFoundError(ImageLoadError, FileNotFoundError):
    """An image path does not exist."""


class InvalidOptionError(SemanticIQAError, ValueError):
    """An option has a value the package does not know (a metric's option, device, batch size, ...)."""


class UnknownOptionError(InvalidOptionError, TypeError):
    """A keyword argument the function does not take; a `TypeError` too, as Python raises for one."""


class OutputError(InvalidInputError, InvalidOptionError):
    """An output path is refused: it exists (without overwrite), is an input, or cannot be written there.

    Both an input and an option error: a result `--out` used to raise the one, an explanation
    figure the other, and code catching either keeps working.
    """


class MetricContractError(SemanticIQAError, TypeError):
    """A metric (a plug-in) does not keep its declared contract: its records differ from its declared
    result fields, or a hook the shared layers call is missing. A fault of the metric, not of the input."""


class PluginWarning(UserWarning):
    """A metric plug-in (entry point `semantic_iqa.metrics`) could not be loaded; the others still work."""


class ClusterConnectionError(SemanticIQAError, ConnectionError):
    """The Ray cluster at `--ray-address` cannot be reached, or what answers there is not a Ray head."""


class ResourceLimitError(SemanticIQAError, MemoryError):
    """A computation would need (or needed) more memory than is allowed or available: too many pixels."""


class WeightsError(SemanticIQAError):
    """A weights folder or Hub repo cannot be used."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """The weights folder, one of its files, or the Hub repo cannot be found."""


class NoPublishedWeightsError(WeightsNotFoundError):
    """The published model was asked for, but it is not on the Hub (not published yet) nor cached.

    The message names the ways to get weights: train, convert, or a local folder.
    """


class WeightsFormatError(WeightsError, ValueError):
    """A weights folder is of another format, another format version, or is inconsistent."""


class WeightsOutputError(OutputError, WeightsError):
    """A weights folder is refused as an output: someone else's folder, another metric's weights, an input."""


class WeightsConfigError(WeightsFormatError):
    """A setting in a weights folder's `config.json` has the wrong type or a value its architecture cannot take.

    Attributes: `field` (dotted name, e.g. `preprocess.image_size`), `value` (as read),
    `expected` (in words), `source` (the file).
    """

    def __init__(self, field: str, value: object, expected: str, source: str = "config.json") -> None:
        self.field, self.value, self.expected, self.source = field, value, expected, str(source)
        super().__init__(
            f"{self.source}: {field} is {_shown(value)}; expected {expected}. "
            "Correct it, or get the weights folder again (it was damaged or edited)"
        )

    def __reduce__(self) -> tuple:  # picklable although __init__ takes more than the message
        return type(self), (self.field, self.value, self.expected, self.source)

    def in_file(self, source: object) -> WeightsConfigError:
        """The same error, naming `source` (the full path of the config.json) as the file."""
        return type(self)(self.field, self.value, self.expected, str(source))


def _shown(value: object) -> str:
    """A value as JSON writes it ("5" for a string, true for True), cut to one short line."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class WeightsIntegrityError(WeightsError):
    """A weights file does not have the sha256 recorded in `config.json`, or is not covered by it.

    Not covered: a file a stored backbone holds that `config.json` does not list, or a file
    (or folder) that is a link leading out of the weights folder.
    """


class WeightsCacheError(WeightsError):
    """The Hugging Face cache cannot be written: permission denied, read-only, or disk full."""


class HubUnreachableError(WeightsError, ConnectionError):
    """The Hugging Face Hub (or the `HF_ENDPOINT` mirror) cannot be reached: network down, wrong address, proxy."""


class ConversionError(SemanticIQAError, ValueError):
    """An authors' checkpoint cannot be converted: unreadable, other layout, or non-reference settings."""


class DatasetError(SemanticIQAError, ValueError):
    """A labelled data set cannot be used; the message lists every problem found."""


class ResultFileError(InvalidInputError):
    """An existing result file cannot be resumed: not UTF-8, not Parquet, another model's, other columns."""


class ResultLockedError(ResultFileError):
    """A result file is being written by another run (its `<out>.lock` is held)."""
