//! Where a new partition's replicas go: spread across racks first (Kafka's rack-alternated
//! broker list), so that losing one rack (availability zone) loses at most one replica of
//! a partition whenever there are at least as many racks as replicas.

use std::collections::BTreeMap;

use crate::metadata::MetadataImage;

/// The live brokers ordered rack by rack in turn: the first broker of each rack, then the
/// second of each, ... Brokers without a rack form one rack of their own.
pub fn rack_alternated(image: &MetadataImage) -> Vec<i32> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<i32>> = BTreeMap::new();
    for broker in image.live_brokers() {
        by_rack
            .entry(broker.rack.as_deref())
            .or_default()
            .push(broker.node_id);
    }
    let mut racks: Vec<std::vec::IntoIter<i32>> =
        by_rack.into_values().map(Vec::into_iter).collect();
    let mut order = Vec::new();
    loop {
        let before = order.len();
        for rack in &mut racks {
            if let Some(node) = rack.next() {
                order.push(node);
            }
        }
        if order.len() == before {
            return order;
        }
    }
}

/// The replicas of the `partition`-th new partition: `count` consecutive brokers of the
/// alternated list from a starting point that moves one step per partition (so leaders,
/// the first replicas, spread evenly). Fewer when there are fewer brokers.
pub fn replicas_of(placement: &[i32], start: usize, partition: usize, count: usize) -> Vec<i32> {
    let n = placement.len();
    if n == 0 {
        return Vec::new();
    }
    (0..count.min(n))
        .filter_map(|j| {
            placement
                .get(start.wrapping_add(partition).wrapping_add(j) % n)
                .copied()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::BrokerInfo;

    fn image(racks: &[(i32, &str)]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for (id, rack) in racks {
            let _ = image.brokers.insert(
                *id,
                BrokerInfo {
                    node_id: *id,
                    endpoints: Vec::new(),
                    rack: Some((*rack).to_owned()),
                },
            );
        }
        image
    }

    #[test]
    fn replicas_of_a_partition_are_on_distinct_racks_and_leaders_spread() {
        let image = image(&[(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")]);
        let placement = rack_alternated(&image);
        assert_eq!(placement, vec![1, 3, 5, 2, 4, 6]);
        let rack = |id: i32| image.brokers.get(&id).and_then(|b| b.rack.clone());
        let mut leaders = BTreeMap::<i32, usize>::new();
        for p in 0..60 {
            let replicas = replicas_of(&placement, 7, p, 3);
            assert_eq!(replicas.len(), 3);
            let mut racks: Vec<_> = replicas.iter().map(|r| rack(*r)).collect();
            racks.sort();
            racks.dedup();
            assert_eq!(racks.len(), 3, "partition {p}: {replicas:?}");
            *leaders.entry(replicas[0]).or_default() += 1;
        }
        assert!(leaders.values().all(|n| *n == 10), "{leaders:?}");
    }

    #[test]
    fn fenced_brokers_get_no_replicas_and_counts_are_capped() {
        let mut image = image(&[(1, "a"), (2, "b")]);
        let _ = image.fenced.insert(2);
        let placement = rack_alternated(&image);
        assert_eq!(placement, vec![1]);
        assert_eq!(replicas_of(&placement, 0, 0, 3), vec![1]);
        assert!(replicas_of(&[], 0, 0, 3).is_empty());
    }
}
