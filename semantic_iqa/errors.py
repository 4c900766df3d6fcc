"""Typed errors. Every error the package raises on purpose derives from `SemanticIQAError`.

The classes also derive from the matching built-in (`ValueError`, `FileNotFoundError`) so
code that already catches those keeps working.
"""

from __future__ import annotations


class SemanticIQAError(Exception):
    """Base class of every error raised on purpose by semantic-iqa."""


class InvalidInputError(SemanticIQAError, ValueError):
    """An image argument has the wrong type, rank, channel count, value range or batch size."""


class ImageLoadError(InvalidInputError):
    """An image could not be turned into pixels: corrupt bytes, unsupported mode, zero size."""


class ImageNotFoundError(ImageLoadError, FileNotFoundError):
    """An image path does not exist."""


class InvalidOptionError(SemanticIQAError, ValueError):
    """An option has a value the package does not know (gate mode, device, batch size, ...)."""


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


class WeightsIntegrityError(WeightsError):
    """A weights file does not have the sha256 recorded in `config.json`."""


class WeightsCacheError(WeightsError):
    """The Hugging Face cache cannot be written: permission denied, read-only, or disk full."""


class ConversionError(SemanticIQAError, ValueError):
    """An authors' checkpoint cannot be converted: unreadable, other layout, or non-reference settings."""


class DatasetError(SemanticIQAError, ValueError):
    """A labelled data set cannot be used; the message lists every problem found."""
