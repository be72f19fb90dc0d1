/**
 * Traversal of every graph and tensor in a model: the main graph, subgraphs held in node
 * attributes (If/Loop/Scan bodies, at any depth), functions, and training-info graphs.
 */
import type { AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto } from './proto';

/** A graph and where it sits, e.g. `main` or `main/If_0.then_branch`. */
export interface GraphScope {
  /** The graph. */
  graph: GraphProto;
  /** Human-readable path used in messages and listings. */
  path: string;
  /** The enclosing scope for subgraphs, `undefined` for top-level graphs. */
  parent: GraphScope | undefined;
}

/** Calls `fn` for the main graph, then every subgraph in depth-first order. */
export function forEachGraph(model: ModelProto, fn: (scope: GraphScope) => void): void {
  const visit = (graph: GraphProto, path: string, parent: GraphScope | undefined): void => {
    const scope: GraphScope = { graph, path, parent };
    fn(scope);
    for (const [i, node] of graph.node.entries()) {
      for (const attr of node.attribute) {
        for (const [j, g] of attrGraphs(attr).entries()) {
          const suffix = attr.graphs.length > 0 ? `[${j}]` : '';
          visit(g, `${path}/${nodeLabel(node, i)}.${attr.name}${suffix}`, scope);
        }
      }
    }
  };
  if (model.graph) visit(model.graph, 'main', undefined);
  for (const [i, ti] of model.trainingInfo.entries()) {
    if (ti.initialization) visit(ti.initialization, `training_info[${i}].initialization`, undefined);
    if (ti.algorithm) visit(ti.algorithm, `training_info[${i}].algorithm`, undefined);
  }
}

/** The graphs an attribute holds (`g` and `graphs`). */
export function attrGraphs(attr: AttributeProto): GraphProto[] {
  return attr.g ? [attr.g, ...attr.graphs] : attr.graphs;
}

/** A node's name, or `OpType_<index>` when it has none. */
export function nodeLabel(node: NodeProto, index: number): string {
  return node.name || `${node.opType}_${index}`;
}

/**
 * Calls `fn` for every `TensorProto` in the model that can hold data: initializers, sparse
 * initializers' values and indices, tensors in node attributes (Constant `value`, `t`, `tensors`,
 * `sparse_tensor(s)`), in every graph, function and training-info graph.
 */
export function forEachTensor(model: ModelProto, fn: (t: TensorProto, where: string) => void): void {
  const fromAttrs = (nodes: NodeProto[], where: string): void => {
    for (const [i, node] of nodes.entries()) {
      for (const a of node.attribute) {
        const at = `${where}/${nodeLabel(node, i)}.${a.name}`;
        if (a.t) fn(a.t, at);
        for (const t of a.tensors) fn(t, at);
        for (const s of a.sparseTensor ? [a.sparseTensor, ...a.sparseTensors] : a.sparseTensors) {
          if (s.values) fn(s.values, at);
          if (s.indices) fn(s.indices, at);
        }
      }
    }
  };
  forEachGraph(model, ({ graph, path }) => {
    for (const t of graph.initializer) fn(t, path);
    for (const s of graph.sparseInitializer) {
      if (s.values) fn(s.values, path);
      if (s.indices) fn(s.indices, path);
    }
    fromAttrs(graph.node, path);
  });
  for (const f of model.functions) fromAttrs(f.node, `function ${f.domain}.${f.name}`);
}
