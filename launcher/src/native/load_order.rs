//! In which order a shared object's libraries are loaded: dependencies first, as the dynamic
//! loader would, from the graph the packer recorded (`shared_libraries` in the manifest: each
//! object's `DT_NEEDED` entries that are in the archive).
//!
//! Libraries may need each other (Pillow 13's `libfreetype` and `libharfbuzz`): the dynamic
//! loader maps every member of such a cycle, then relocates them together. Here a cycle (a
//! strongly connected component of the graph) is one step, [`Step::Together`], loaded by one
//! `dlopen` (`shared_objects.rs`). Pure Rust, unit-tested.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The packer's graph: object → the archive libraries it needs.
pub type Graph = BTreeMap<String, Vec<String>>;

/// One step of loading an object's libraries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A library, loaded on its own.
    One(String),
    /// Libraries that need each other, sorted: loaded by one `dlopen`.
    Together(Vec<String>),
}

impl Step {
    pub fn members(&self) -> &[String] {
        match self {
            Step::One(name) => std::slice::from_ref(name),
            Step::Together(names) => names,
        }
    }
}

/// The cycles of `graph` (of two libraries or more): each library that belongs to one, with all
/// its members, sorted.
pub fn cycles(graph: &Graph) -> HashMap<String, Vec<String>> {
    struct Tarjan<'g> {
        graph: &'g Graph,
        next: usize,
        index: HashMap<&'g str, usize>,
        low: HashMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: HashMap<String, Vec<String>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, node: &'g str) {
            self.index.insert(node, self.next);
            self.low.insert(node, self.next);
            self.next += 1;
            self.stack.push(node);
            self.on_stack.insert(node);
            for next in self.graph.get(node).into_iter().flatten() {
                let next = next.as_str();
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut members = Vec::new();
                while let Some(member) = self.stack.pop() {
                    self.on_stack.remove(member);
                    members.push(member.to_string());
                    if member == node {
                        break;
                    }
                }
                // A library that names itself is satisfied by its own `SONAME` once loaded.
                if members.len() > 1 {
                    members.sort();
                    for member in &members {
                        self.found.insert(member.clone(), members.clone());
                    }
                }
            }
        }
    }
    let mut tarjan = Tarjan {
        graph,
        next: 0,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: HashMap::new(),
    };
    for node in graph.keys() {
        if !tarjan.index.contains_key(node.as_str()) {
            tarjan.visit(node);
        }
    }
    tarjan.found
}

/// The libraries `name` needs, transitively, dependencies first, each once, each with the
/// object that needs it; a cycle is one step, after whatever its members need outside it.
pub fn libraries_in_load_order(
    graph: &Graph,
    cycles: &HashMap<String, Vec<String>>,
    name: &str,
) -> Vec<(Step, String)> {
    fn visit(
        graph: &Graph,
        cycles: &HashMap<String, Vec<String>>,
        members: &[String],
        done: &mut BTreeSet<String>,
        order: &mut Vec<(Step, String)>,
    ) {
        for member in members {
            for library in graph.get(member).into_iter().flatten() {
                if done.contains(library) || members.contains(library) {
                    continue;
                }
                let step = match cycles.get(library) {
                    Some(cycle) => Step::Together(cycle.clone()),
                    None => Step::One(library.clone()),
                };
                done.extend(step.members().iter().cloned());
                visit(graph, cycles, step.members(), done, order);
                order.push((step, member.clone()));
            }
        }
    }
    let mut done = BTreeSet::from([name.to_string()]);
    let mut order = Vec::new();
    visit(graph, cycles, &[name.to_string()], &mut done, &mut order);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> Graph {
        edges
            .iter()
            .map(|(name, needed)| {
                (
                    name.to_string(),
                    needed.iter().map(|needed| needed.to_string()).collect(),
                )
            })
            .collect()
    }

    fn names(order: &[(Step, String)]) -> Vec<String> {
        order
            .iter()
            .map(|(step, by)| format!("{}<-{by}", step.members().join("+")))
            .collect()
    }

    #[test]
    fn dependencies_come_first_each_once() {
        let graph = graph(&[
            ("ext.so", &["b.so", "a.so"]),
            ("b.so", &["a.so", "c.so"]),
            ("a.so", &["c.so"]),
        ]);
        let cycles = cycles(&graph);
        assert!(cycles.is_empty());
        assert_eq!(
            names(&libraries_in_load_order(&graph, &cycles, "ext.so")),
            vec!["c.so<-a.so", "a.so<-b.so", "b.so<-ext.so"]
        );
    }

    /// Pillow 13: `_imagingft` needs freetype and harfbuzz, which need each other; freetype also
    /// needs png, which needs nothing in the archive.
    #[test]
    fn a_cycle_is_one_step_after_what_it_needs() {
        let graph = graph(&[
            ("PIL/_imagingft.so", &["libfreetype.so", "libharfbuzz.so"]),
            ("libfreetype.so", &["libpng.so", "libharfbuzz.so"]),
            ("libharfbuzz.so", &["libfreetype.so"]),
        ]);
        let cycles = cycles(&graph);
        let together = vec!["libfreetype.so".to_string(), "libharfbuzz.so".to_string()];
        assert_eq!(cycles.get("libharfbuzz.so"), Some(&together));
        assert_eq!(cycles.get("libpng.so"), None);
        assert_eq!(
            libraries_in_load_order(&graph, &cycles, "PIL/_imagingft.so"),
            vec![
                (
                    Step::One("libpng.so".to_string()),
                    "libfreetype.so".to_string()
                ),
                (Step::Together(together), "PIL/_imagingft.so".to_string()),
            ]
        );
    }

    #[test]
    fn longer_cycles_and_a_library_that_names_itself() {
        let graph = graph(&[
            ("ext.so", &["a.so"]),
            ("a.so", &["b.so"]),
            ("b.so", &["c.so"]),
            ("c.so", &["a.so", "d.so"]),
            ("d.so", &["d.so"]),
        ]);
        let cycles = cycles(&graph);
        assert_eq!(cycles.get("b.so").map(Vec::len), Some(3));
        assert_eq!(cycles.get("d.so"), None);
        assert_eq!(
            names(&libraries_in_load_order(&graph, &cycles, "ext.so")),
            vec!["d.so<-c.so", "a.so+b.so+c.so<-ext.so"]
        );
    }
}
