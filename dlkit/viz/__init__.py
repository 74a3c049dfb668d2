"""Plots (matplotlib) and interactive explorers (ipywidgets) used by the chapters."""

from dlkit.viz.activations import (
    activation_curve,
    activation_explorer,
    plot_activation,
    plot_activation_gallery,
    plot_gradient_norms,
)
from dlkit.viz.attention import (
    attention_explorer,
    attention_heatmap,
    collect_attention,
    plot_accuracy_by_length,
    plot_attention_cost,
    plot_attention_heads,
)
from dlkit.viz.conv import (
    conv_explorer,
    feature_maps,
    plot_feature_maps,
    plot_filters,
    plot_saliency,
    saliency,
)
from dlkit.viz.descent import descent_explorer, descent_path, plot_descent
from dlkit.viz.distillation import distillation_explorer, plot_softened
from dlkit.viz.generation import generation_explorer, plot_next_token_distribution
from dlkit.viz.graph import backprop_stepper, backprop_steps, example_graph, graph_figure
from dlkit.viz.losses import loss_curves, loss_explorer, plot_loss_curves
from dlkit.viz.memory import estimate_memory, memory_explorer, plot_memory
from dlkit.viz.optimizer_race import optimizer_race, plot_race
from dlkit.viz.pruning import plot_sparsity_curve, pruning_explorer
from dlkit.viz.regularization import (
    plot_confusion_matrix,
    plot_decision_boundary,
    regularization_explorer,
    threshold_explorer,
)
from dlkit.viz.rnn import (
    gradient_flow_explorer,
    gradient_flow_figure,
    plot_gradient_flow,
    plot_training_curves,
)
from dlkit.viz.schedules import schedule_explorer, schedule_values
from dlkit.viz.tokenizer import show_tokens, tokenizer_explorer

__all__ = [
    "activation_curve",
    "activation_explorer",
    "attention_explorer",
    "attention_heatmap",
    "backprop_stepper",
    "backprop_steps",
    "collect_attention",
    "conv_explorer",
    "descent_explorer",
    "descent_path",
    "distillation_explorer",
    "estimate_memory",
    "example_graph",
    "feature_maps",
    "generation_explorer",
    "gradient_flow_explorer",
    "gradient_flow_figure",
    "graph_figure",
    "loss_curves",
    "loss_explorer",
    "memory_explorer",
    "optimizer_race",
    "plot_accuracy_by_length",
    "plot_activation",
    "plot_activation_gallery",
    "plot_attention_cost",
    "plot_attention_heads",
    "plot_confusion_matrix",
    "plot_decision_boundary",
    "plot_descent",
    "plot_feature_maps",
    "plot_filters",
    "plot_gradient_flow",
    "plot_gradient_norms",
    "plot_loss_curves",
    "plot_memory",
    "plot_next_token_distribution",
    "plot_race",
    "plot_saliency",
    "plot_softened",
    "plot_sparsity_curve",
    "plot_training_curves",
    "pruning_explorer",
    "regularization_explorer",
    "saliency",
    "schedule_explorer",
    "schedule_values",
    "show_tokens",
    "threshold_explorer",
    "tokenizer_explorer",
]
