//! Module dependency graph: a stable topological order, or a typed error naming the modules.

use std::collections::HashMap;

use crate::error::Error;

/// Orders `nodes` (name, dependencies) so every module comes after its dependencies.
/// Modules without an order between them keep their registration order.
pub(crate) fn topological_order(nodes: &[(String, Vec<String>)]) -> Result<Vec<usize>, Error> {
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(nodes.len());
    for (i, (name, _)) in nodes.iter().enumerate() {
        if index.insert(name.as_str(), i).is_some() {
            return Err(Error::DuplicateModule { name: name.clone() });
        }
    }
    for (name, deps) in nodes {
        for dep in deps {
            if !index.contains_key(dep.as_str()) {
                return Err(Error::MissingDependency {
                    module: name.clone(),
                    dependency: dep.clone(),
                });
            }
        }
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Visiting,
        Done,
    }
    let mut marks = vec![Mark::New; nodes.len()];
    let mut order = Vec::with_capacity(nodes.len());
    let mut stack: Vec<usize> = Vec::new();

    fn visit(
        i: usize,
        nodes: &[(String, Vec<String>)],
        index: &HashMap<&str, usize>,
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) -> Result<(), Error> {
        match marks[i] {
            Mark::Done => return Ok(()),
            Mark::Visiting => {
                let start = stack.iter().position(|&s| s == i).unwrap_or(0);
                let mut cycle: Vec<String> =
                    stack[start..].iter().map(|&s| nodes[s].0.clone()).collect();
                cycle.push(nodes[i].0.clone());
                return Err(Error::DependencyCycle { cycle });
            }
            Mark::New => {}
        }
        marks[i] = Mark::Visiting;
        stack.push(i);
        for dep in &nodes[i].1 {
            if let Some(&d) = index.get(dep.as_str()) {
                visit(d, nodes, index, marks, stack, order)?;
            }
        }
        stack.pop();
        marks[i] = Mark::Done;
        order.push(i);
        Ok(())
    }

    for i in 0..nodes.len() {
        visit(i, nodes, &index, &mut marks, &mut stack, &mut order)?;
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, deps: &[&str]) -> (String, Vec<String>) {
        (
            name.to_owned(),
            deps.iter().map(|d| (*d).to_owned()).collect(),
        )
    }

    #[test]
    fn dependencies_come_first_and_registration_order_is_kept_otherwise() {
        let nodes = [
            node("router", &["server"]),
            node("cache", &[]),
            node("server", &["cache"]),
        ];
        let order: Vec<&str> = topological_order(&nodes)
            .unwrap_or_default()
            .into_iter()
            .map(|i| nodes[i].0.as_str())
            .collect();
        assert_eq!(order, ["cache", "server", "router"]);
    }

    #[test]
    fn a_cycle_names_every_module_on_it() {
        let nodes = [node("a", &["b"]), node("b", &["c"]), node("c", &["a"])];
        let error = topological_order(&nodes)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(error, "dependency cycle: a -> b -> c -> a");
    }

    #[test]
    fn a_missing_dependency_and_a_duplicate_are_named() {
        let missing = topological_order(&[node("a", &["ghost"])])
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            missing.as_deref(),
            Some("module `a` depends on `ghost`, which is not registered")
        );
        let dup = topological_order(&[node("a", &[]), node("a", &[])])
            .err()
            .map(|e| e.to_string());
        assert_eq!(dup.as_deref(), Some("duplicate module name `a`"));
    }
}
