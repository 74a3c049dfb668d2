r"""LSTM and GRU written from matrix products and pointwise functions.

Same parameters, names, shapes, gate order and call conventions as ``torch.nn.LSTM`` /
``nn.LSTMCell`` / ``nn.GRU`` / ``nn.GRUCell`` (unidirectional, no dropout), so
``load_state_dict`` from PyTorch's modules works and the outputs can be compared.

**LSTM** (gate order i, f, g, o in the stacked weights; :math:`\sigma` the logistic
sigmoid, :math:`\odot` the elementwise product):

.. math::

    \begin{aligned}
    i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) && \text{input gate} \\
    f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) && \text{forget gate} \\
    g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) && \text{candidate} \\
    o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) && \text{output gate} \\
    c_t &= f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = o_t \odot \tanh(c_t)
    \end{aligned}

``weight_ih`` stacks :math:`[W_{ii}; W_{if}; W_{ig}; W_{io}]`, shape ``(4H, D)``.

**GRU** (gate order r, z, n):

.. math::

    \begin{aligned}
    r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) && \text{reset gate} \\
    z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) && \text{update gate} \\
    n_t &= \tanh\big(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})\big) && \text{candidate} \\
    h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}
    \end{aligned}

Note where the reset gate acts: on :math:`W_{hn} h_{t-1} + b_{hn}`, bias included
(PyTorch's and cuDNN's variant; the original paper applies :math:`r_t` to
:math:`h_{t-1}` before the product). ``weight_ih`` stacks :math:`[W_{ir}; W_{iz}; W_{in}]`,
shape ``(3H, D)``.

The additive cell update :math:`c_t = f_t \odot c_{t-1} + \dots` is why an LSTM keeps
gradients alive: :math:`\partial c_t / \partial c_{t-1} = \operatorname{diag}(f_t)`,
no weight matrix and no squashing, so with forget gates near 1 a signal survives many
steps (the GRU's :math:`z_t \odot h_{t-1}` path plays the same role).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["GRU", "LSTM", "GRUCell", "LSTMCell", "gru_cell", "lstm_cell"]


def lstm_cell(
    x: Tensor,
    state: tuple[Tensor, Tensor],
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None = None,
    bias_hh: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """One LSTM step: ``x`` ``(B, D)``, ``state = (h, c)`` each ``(B, H)``; returns ``(h', c')``."""
    h, c = state
    gates = x @ weight_ih.T + h @ weight_hh.T  # (B, 4H)
    if bias_ih is not None:
        gates = gates + bias_ih
    if bias_hh is not None:
        gates = gates + bias_hh
    i, f, g, o = gates.chunk(4, dim=1)  # each (B, H), PyTorch's order i, f, g, o
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c_next = f * c + i * g
    return o * torch.tanh(c_next), c_next


def gru_cell(
    x: Tensor,
    h: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None = None,
    bias_hh: Tensor | None = None,
) -> Tensor:
    """One GRU step: ``x`` ``(B, D)``, ``h`` ``(B, H)``; returns ``h'`` ``(B, H)``."""
    from_x = x @ weight_ih.T  # (B, 3H)
    from_h = h @ weight_hh.T  # (B, 3H)
    if bias_ih is not None:
        from_x = from_x + bias_ih
    if bias_hh is not None:
        from_h = from_h + bias_hh
    x_r, x_z, x_n = from_x.chunk(3, dim=1)  # each (B, H), order r, z, n
    h_r, h_z, h_n = from_h.chunk(3, dim=1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)  # r multiplies W_hn h + b_hn, bias included
    return (1 - z) * n + z * h


class _RecurrentBase(nn.Module):
    """Parameters named like PyTorch's: ``weight_ih{suffix}``, ``weight_hh{suffix}``, biases."""

    gates: int  # 4 for the LSTM, 3 for the GRU

    def _make_parameters(self, suffix: str, input_size: int, bias: bool) -> None:
        rows = self.gates * self.hidden_size
        self.register_parameter(f"weight_ih{suffix}", nn.Parameter(torch.empty(rows, input_size)))
        self.register_parameter(
            f"weight_hh{suffix}", nn.Parameter(torch.empty(rows, self.hidden_size))
        )
        for name in (f"bias_ih{suffix}", f"bias_hh{suffix}"):
            self.register_parameter(name, nn.Parameter(torch.empty(rows)) if bias else None)

    def reset_parameters(self) -> None:
        """PyTorch's initialisation: every entry from :math:`U(-1/\\sqrt{H}, 1/\\sqrt{H})`."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def _check_sizes(self, input_size: int, hidden_size: int) -> None:
        if input_size < 1 or hidden_size < 1:
            raise ValueError(
                f"input_size and hidden_size must be >= 1, got {input_size}, {hidden_size}"
            )
        self.input_size = input_size
        self.hidden_size = hidden_size

    def _check_step_input(self, x: Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__} expects input of shape (B, input_size={self.input_size}), "
                f"got {tuple(x.shape)}"
            )

    def _check_state(self, state: Tensor, expected: tuple[int, ...], name: str) -> None:
        if tuple(state.shape) != expected:
            raise ValueError(
                f"{type(self).__name__}: {name} must have shape {expected}, got {tuple(state.shape)}"
            )


class LSTMCell(_RecurrentBase):
    """One LSTM step with parameters ``weight_ih`` ``(4H, D)``, ``weight_hh`` ``(4H, H)``,
    ``bias_ih``, ``bias_hh`` ``(4H,)``, like ``torch.nn.LSTMCell``."""

    gates = 4

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self._check_sizes(input_size, hidden_size)
        self._make_parameters("", input_size, bias)
        self.reset_parameters()

    def forward(
        self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """``x`` ``(B, D)``, ``state = (h, c)`` each ``(B, H)`` (zeros if None) -> ``(h', c')``."""
        self._check_step_input(x)
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_size)
            state = (zeros, zeros)
        for name, s in zip(("h", "c"), state, strict=True):
            self._check_state(s, (x.shape[0], self.hidden_size), name)
        return lstm_cell(x, state, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


class GRUCell(_RecurrentBase):
    """One GRU step with parameters ``weight_ih`` ``(3H, D)``, ``weight_hh`` ``(3H, H)``,
    ``bias_ih``, ``bias_hh`` ``(3H,)``, like ``torch.nn.GRUCell``."""

    gates = 3

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self._check_sizes(input_size, hidden_size)
        self._make_parameters("", input_size, bias)
        self.reset_parameters()

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        """``x`` ``(B, D)``, ``h`` ``(B, H)`` (zeros if None) -> ``h'`` ``(B, H)``."""
        self._check_step_input(x)
        if h is None:
            h = x.new_zeros(x.shape[0], self.hidden_size)
        self._check_state(h, (x.shape[0], self.hidden_size), "h")
        return gru_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


class _StackedRecurrent(_RecurrentBase):
    """``num_layers`` cells stacked in depth and unrolled in time, like ``nn.LSTM`` / ``nn.GRU``."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
    ) -> None:
        super().__init__()
        self._check_sizes(input_size, hidden_size)
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        for layer in range(num_layers):
            self._make_parameters(f"_l{layer}", input_size if layer == 0 else hidden_size, bias)
        self.reset_parameters()

    def _layer_weights(self, layer: int) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        return tuple(  # type: ignore[return-value]
            getattr(self, f"{name}_l{layer}")
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        )

    def _time_major(self, x: Tensor) -> Tensor:
        layout = "(B, T, input_size" if self.batch_first else "(T, B, input_size"
        if x.dim() != 3 or x.shape[2] != self.input_size:
            raise ValueError(
                f"{type(self).__name__} expects input of shape {layout}={self.input_size}) "
                f"(batch_first={self.batch_first}), got {tuple(x.shape)}"
            )
        return x.transpose(0, 1) if self.batch_first else x  # (T, B, D)

    def _output(self, outputs: list[Tensor]) -> Tensor:
        out = torch.stack(outputs)  # (T, B, H)
        return out.transpose(0, 1) if self.batch_first else out

    def _state_shape(self, batch: int) -> tuple[int, int, int]:
        return (self.num_layers, batch, self.hidden_size)

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
            f"bias={self.bias}, batch_first={self.batch_first}"
        )


class LSTM(_StackedRecurrent):
    """A multi-layer LSTM with ``nn.LSTM``'s parameters (``weight_ih_l0``, ...) and call.

    ``forward(x, (h0, c0))``: ``x`` ``(T, B, D)`` (``(B, T, D)`` with ``batch_first``),
    ``h0``, ``c0`` ``(num_layers, B, H)`` (zeros if omitted). Returns ``(output, (h_n,
    c_n))`` with ``output`` the last layer's hidden states ``(T, B, H)`` (or ``(B, T, H)``).
    """

    gates = 4

    def forward(
        self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        seq = self._time_major(x)  # (T, B, D)
        shape = self._state_shape(seq.shape[1])
        if state is None:
            state = (seq.new_zeros(shape), seq.new_zeros(shape))
        for name, s in zip(("h0", "c0"), state, strict=True):
            self._check_state(s, shape, name)
        h_last, c_last = [], []
        layer_input = list(seq.unbind(0))  # T tensors (B, D)
        for layer in range(self.num_layers):
            weights = self._layer_weights(layer)
            h, c = state[0][layer], state[1][layer]  # (B, H)
            outputs = []
            for x_t in layer_input:
                h, c = lstm_cell(x_t, (h, c), *weights)
                outputs.append(h)
            h_last.append(h)
            c_last.append(c)
            layer_input = outputs
        return self._output(layer_input), (torch.stack(h_last), torch.stack(c_last))


class GRU(_StackedRecurrent):
    """A multi-layer GRU with ``nn.GRU``'s parameters (``weight_ih_l0``, ...) and call.

    ``forward(x, h0)``: ``x`` ``(T, B, D)`` (``(B, T, D)`` with ``batch_first``), ``h0``
    ``(num_layers, B, H)`` (zeros if omitted). Returns ``(output, h_n)``.
    """

    gates = 3

    def forward(self, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        seq = self._time_major(x)  # (T, B, D)
        shape = self._state_shape(seq.shape[1])
        if h0 is None:
            h0 = seq.new_zeros(shape)
        self._check_state(h0, shape, "h0")
        h_last = []
        layer_input = list(seq.unbind(0))  # T tensors (B, D)
        for layer in range(self.num_layers):
            weights = self._layer_weights(layer)
            h = h0[layer]  # (B, H)
            outputs = []
            for x_t in layer_input:
                h = gru_cell(x_t, h, *weights)
                outputs.append(h)
            h_last.append(h)
            layer_input = outputs
        return self._output(layer_input), torch.stack(h_last)
