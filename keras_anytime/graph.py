"""Walking a Keras functional graph back from an output: the layer calls it needs.

`flops` (MACs per exit), `inference` (the stages of early exit) and the MSDNet reference
counts all ask the same question of a model's graph, "which layer calls does this output
depend on?", and answer it here.
"""

from __future__ import annotations

import keras

from keras_anytime.layers import RunAfter

__all__ = ["layer_calls", "producer"]


def producer(tensor):
    """The Keras `Node` (one layer call) that made a symbolic tensor.

    Args:
        tensor: a symbolic Keras tensor of a functional graph.
    """
    operation, node_index, _ = tensor._keras_history
    return operation._inbound_nodes[node_index]


def layer_calls(output, lazy: bool = False) -> dict[tuple, object]:
    """Every layer call (Keras `Node`) that a symbolic output depends on, as {key: node}.

    The output's own call is included, input layers are left out. A nested model (a
    functional model called as a layer, as the members of an EANN) is expanded: the calls
    of its own layers that the output needs appear under keys that carry the outer call,
    so a model called twice counts twice. Keys are stable across
    calls of this function, so the calls of several outputs can be merged by key.

    Args:
        output: a symbolic output tensor of a functional model.
        lazy: follow a `RunAfter` call through its first input only: the output's data
            dependencies, without the work the anytime order runs before it (the other
            scales of an MSDNet block). Defaults to False.
    """
    found: dict[tuple, object] = {}
    expanded: set[tuple] = set()
    stack = [(output, ())]
    while stack:
        tensor, scope = stack.pop()
        operation, node_index, tensor_index = tensor._keras_history
        node = operation._inbound_nodes[node_index]
        if node.is_input:
            continue
        if isinstance(operation, keras.Model):
            key = (scope, id(node), tensor_index)
            if key not in expanded:
                expanded.add(key)
                stack.append((operation.outputs[tensor_index], (*scope, id(node))))
                stack.extend((t, scope) for t in node.input_tensors)
            continue
        key = (scope, id(node))
        if key not in found:
            found[key] = node
            inputs = node.input_tensors
            if lazy and isinstance(operation, RunAfter):
                inputs = inputs[:1]
            stack.extend((t, scope) for t in inputs)
    return found
