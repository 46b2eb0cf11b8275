"""The degradation recognizer: one small, independent binary classifier per degradation.

Multi-label over the registered degradation letters (C, B, N, D, ...): head ``L`` says
whether degradation ``L`` is present in an image, whatever else is. The recognizer grows
with the task sequence like the restorer: :meth:`DegradationRecognizer.add_letter` adds a
head for a new single degradation and freezes every earlier one. The heads share nothing
(no common trunk), so an earlier letter's logit is bit-for-bit unchanged by later heads
and their training; a shared trunk would either be frozen after the first task (features
learned from one degradation only) or drift and change the earlier logits.

A head sees the image twice, as it is and standardised per image (zero mean, unit
variance), so it can judge absolute levels (contrast, black level) and texture
(sharpness, noise) independently; its features are pooled over the whole image by mean,
log standard deviation and maximum, so any image size works.

Each head may carry a calibrated threshold (:meth:`DegradationRecognizer.set_threshold`):
the probability at which its letter counts as present, chosen on validation images
(:func:`~sepkit_torch.continual.recognition.calibrate_threshold`). The recognizer's
:meth:`~DegradationRecognizer.probabilities` are shifted in logit space so that every
head's threshold reads 0.5; a head without one is not shifted.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sepkit_torch._errors import InvalidInputError, TaskStateError
from sepkit_torch.models.backbone import check_images

__all__ = ["DegradationRecognizer", "LetterHead"]

# 1: width and letters; 2: also the heads' calibrated thresholds (written only when a head
# has one, so a recognizer without thresholds saves the state it always did)
_STATE_FORMAT = 1
_STATE_FORMAT_THRESHOLDS = 2


def _check_width(width) -> None:
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise InvalidInputError(f"`width` must be a positive int; got {width!r}")


class LetterHead(nn.Module):
    """One degradation's detector: ``(B, 1, H, W)`` images in ``[0, 1]`` -> ``(B,)`` logits.

    Three 3x3 convolutions (the last two with stride 2), GELU, then mean, log standard
    deviation and maximum of every channel over the image, and a two-layer classifier.

    Parameters
    ----------
    width : int
        Channels of the first convolution (the last has ``2 * width``).
    """

    def __init__(self, width: int = 16):
        super().__init__()
        _check_width(width)
        self.features = nn.Sequential(
            nn.Conv2d(2, width, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.GELU(),
        )
        self.classifier = nn.Sequential(nn.Linear(6 * width, width), nn.GELU(), nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        mean = flat.mean(1).view(-1, 1, 1, 1)
        std = flat.std(1, correction=0).view(-1, 1, 1, 1)
        standardised = (x - mean) / (std + 1e-3)
        f = self.features(torch.cat([x, standardised], 1)).flatten(2)
        f_mean = f.mean(2)
        # the log of the spread: noise and sharpness energies span orders of magnitude
        f_log_std = 0.5 * (f.square().mean(2) - f_mean.square()).clamp_min(1e-8).log()
        pooled = torch.cat([f_mean, f_log_std, f.amax(2)], 1)
        return self.classifier(pooled)[:, 0]


class DegradationRecognizer(nn.Module):
    """Multi-label degradation recognizer, one :class:`LetterHead` per degradation.

    Parameters
    ----------
    width : int, default 16
        Width of every head.

    Attributes
    ----------
    heads : ModuleDict
        Degradation name -> its head, in the order added.

    Notes
    -----
    Only the newest head trains (:meth:`trainable_parameters`); the letters, the width and
    the calibrated thresholds are the module's extra state, so :meth:`from_state_dict`
    rebuilds it from a checkpoint (plain data: it loads with ``weights_only=True``).

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.models import DegradationRecognizer
    >>> recognizer = DegradationRecognizer()
    >>> for letter in ("C", "B"):
    ...     recognizer.add_letter(letter)
    >>> recognizer.letters
    ('C', 'B')
    >>> recognizer(torch.rand(3, 1, 20, 24)).shape  # one logit per image and letter
    torch.Size([3, 2])
    >>> DegradationRecognizer.from_state_dict(recognizer.state_dict()).letters
    ('C', 'B')
    >>> recognizer.set_threshold("B", 0.3)
    >>> DegradationRecognizer.from_state_dict(recognizer.state_dict()).thresholds
    {'B': 0.3}
    """

    def __init__(self, width: int = 16):
        super().__init__()
        _check_width(width)
        self.width = width
        self.heads = nn.ModuleDict()
        self._thresholds: dict[str, float] = {}

    @classmethod
    def from_state_dict(cls, state_dict) -> DegradationRecognizer:
        """A recognizer with the letters and weights of `state_dict`."""
        try:
            state = state_dict["_extra_state"]
        except (KeyError, TypeError):
            raise InvalidInputError(
                "`state_dict` must be a DegradationRecognizer state_dict with an "
                f"'_extra_state' entry; got {type(state_dict).__name__} without one"
            ) from None
        model = cls(int(state["width"]))
        model.load_state_dict(state_dict)
        return model

    @property
    def letters(self) -> tuple[str, ...]:
        """The degradations recognized, in the order added (the logits' order)."""
        return tuple(self.heads.keys())

    @property
    def thresholds(self) -> dict[str, float]:
        """The calibrated thresholds, per letter that has one (a copy; the others: 0.5)."""
        return dict(self._thresholds)

    def set_threshold(self, letter: str, threshold: float | None) -> None:
        """Set the probability at which the head of `letter` counts its letter present
        (None: back to 0.5, no shift)."""
        if letter not in self.heads:
            raise InvalidInputError(
                f"`letter` must be one of the recognizer's letters {list(self.letters)}; "
                f"got {letter!r}"
            )
        if threshold is None:
            self._thresholds.pop(letter, None)
            return
        if (
            not isinstance(threshold, (int, float))
            or isinstance(threshold, bool)
            or not 0.0 < float(threshold) < 1.0
        ):
            raise InvalidInputError(
                f"`threshold` of {letter!r} must be a probability strictly between 0 and 1; "
                f"got {threshold!r}"
            )
        self._thresholds[letter] = float(threshold)

    def decision_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """`logits` ``(B, len(letters))`` minus each head's calibrated offset (the logit of
        its threshold): 0 is every head's decision boundary. Without thresholds, `logits`
        itself."""
        if not self._thresholds:
            return logits
        offsets = [_logit(self._thresholds.get(letter, 0.5)) for letter in self.letters]
        return logits - torch.tensor(offsets, dtype=logits.dtype, device=logits.device)

    def add_letter(self, letter: str) -> None:
        """Add a head for degradation `letter` (trainable) and freeze all earlier heads."""
        if not isinstance(letter, str) or not letter:
            raise InvalidInputError(
                f"`letter` must be a degradation name such as 'C'; got {letter!r}"
            )
        if letter in self.heads:
            raise TaskStateError(
                f"the recognizer has a head for {letter!r} already; its letters are "
                f"{list(self.letters)}"
            )
        if hasattr(self.heads, letter):
            raise InvalidInputError(
                f"`letter` {letter!r} is reserved (an attribute of nn.ModuleDict)"
            )
        device = next(self.parameters()).device if len(self.heads) else None
        self.heads[letter] = LetterHead(self.width).to(device)
        self._apply_freezing()

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The newest head's parameters (none before the first :meth:`add_letter`)."""
        if not self.heads:
            return []
        return list(self.heads[self.letters[-1]].parameters())

    def _apply_freezing(self) -> None:
        newest = self.letters[-1] if self.heads else None
        for letter, head in self.heads.items():
            head.requires_grad_(letter == newest)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, len(letters))`` of images `x` ``(B, 1, H, W)`` in ``[0, 1]``."""
        check_images(x, 1)
        if not self.heads:
            raise TaskStateError("the recognizer has no letter yet; call add_letter first")
        return torch.stack([head(x) for head in self.heads.values()], 1)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Per image and letter, the belief it is present: ``sigmoid`` of the
        :meth:`decision_logits`, so 0.5 at each head's calibrated threshold."""
        return torch.sigmoid(self.decision_logits(self(x)))

    def get_extra_state(self) -> dict:
        state = {"format": _STATE_FORMAT, "width": self.width, "letters": list(self.letters)}
        if self._thresholds:
            state["format"] = _STATE_FORMAT_THRESHOLDS
            state["thresholds"] = {
                k: self._thresholds[k] for k in self.letters if k in self._thresholds
            }
        return state

    def set_extra_state(self, state) -> None:
        formats = (_STATE_FORMAT, _STATE_FORMAT_THRESHOLDS)
        if not isinstance(state, dict) or state.get("format") not in formats:
            raise InvalidInputError(
                f"recognizer extra state must be a dict with format {_STATE_FORMAT} or "
                f"{_STATE_FORMAT_THRESHOLDS}; got {state!r}"
            )
        if int(state["width"]) != self.width:
            raise InvalidInputError(
                f"the checkpoint's recognizer width {state['width']} differs from this "
                f"one's {self.width}; build it with DegradationRecognizer.from_state_dict"
            )
        if list(state["letters"]) != list(self.letters):
            for letter in list(self.heads):
                del self.heads[letter]
            for letter in state["letters"]:
                self.heads[letter] = LetterHead(self.width)
        self._thresholds = {}
        for letter, threshold in dict(state.get("thresholds") or {}).items():
            self.set_threshold(letter, threshold)
        self._apply_freezing()

    def extra_repr(self) -> str:
        extra = f", thresholds={self.thresholds}" if self._thresholds else ""
        return f"letters={list(self.letters)}, width={self.width}{extra}"


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))
