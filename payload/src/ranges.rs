//! Arithmetic on byte ranges, shared by the packer (making load plans) and the launcher
//! (deciding which pages to map, fill or give back).

use std::ops::Range;

/// `ranges` minus every byte of `kept`: sorted, disjoint, non-empty ranges.
pub fn subtract(ranges: &[Range<u64>], kept: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut pieces: Vec<Range<u64>> = ranges.to_vec();
    for hole in kept {
        pieces = pieces
            .into_iter()
            .flat_map(|piece| {
                [
                    piece.start..hole.start.min(piece.end),
                    hole.end.max(piece.start)..piece.end,
                ]
            })
            .filter(|piece| piece.start < piece.end)
            .collect();
    }
    pieces.sort_by_key(|piece| piece.start);
    pieces
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::subtract;
    use std::ops::Range;

    #[test]
    fn subtract_leaves_what_no_kept_range_touches() {
        assert_eq!(subtract(&[0..100], &[]), vec![0..100]);
        assert_eq!(subtract(&[0..100], &[90..200]), vec![0..90]);
        assert_eq!(
            subtract(&[10..100], &[0..20, 50..60]),
            vec![20..50, 60..100]
        );
        assert_eq!(subtract(&[10..100], &[0..200]), Vec::<Range<u64>>::new());
        assert_eq!(subtract(&[40..50, 0..10], &[5..45]), vec![0..5, 45..50]);
    }
}
