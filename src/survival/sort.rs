//! Private sorting helpers: order-preserving `u64` keys for `f64` and a stable MSD radix sort.
//! Every estimator sorts by time (and concordance by risk) first; a radix sort of packed keys is
//! several times faster than a comparison sort of `f64` and is stable, so results never depend
//! on the sort's tie order.

/// Order-preserving key of a finite `f64` (`-0.0` and `0.0` map to the same key).
#[inline]
pub(crate) fn f64_key(x: f64) -> u64 {
    let b = (x + 0.0).to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | (1 << 63)
    }
}

/// Stable most-significant-digit radix sort of `v` by `key`, using `buf` (same length) as
/// scratch. The digit adapts to the keys present: it covers the highest bits in which the
/// smallest and largest keys differ, with `log2(n) − 2` bits (4 to 11), so a level's buckets stay
/// cache-resident; short slices are finished by insertion sort. Levels alternate between `v` and
/// `buf` instead of copying back.
pub(crate) fn msd_sort<T: Copy>(v: &mut [T], buf: &mut [T], key: &impl Fn(&T) -> u64) {
    // One bucket-count table per recursion level (at most 64 / 4 levels), zeroed per use only
    // over the digits actually used.
    let mut counts = vec![0u32; 16 * 2048];
    msd_rec(v, buf, key, true, &mut counts);
}

/// Sorts the data held in `a`; the result ends in `a` if `out_in_a`, else in `b`.
fn msd_rec<T: Copy>(a: &mut [T], b: &mut [T], key: &impl Fn(&T) -> u64, out_in_a: bool, counts: &mut [u32]) {
    let n = a.len();
    if n <= 32 {
        for i in 1..n {
            let x = a[i];
            let k = key(&x);
            let mut j = i;
            while j > 0 && key(&a[j - 1]) > k {
                a[j] = a[j - 1];
                j -= 1;
            }
            a[j] = x;
        }
        if !out_in_a {
            b.copy_from_slice(a);
        }
        return;
    }
    let (mut lo, mut hi) = (u64::MAX, 0u64);
    for x in a.iter() {
        let k = key(x);
        lo = lo.min(k);
        hi = hi.max(k);
    }
    if lo == hi {
        if !out_in_a {
            b.copy_from_slice(a);
        }
        return;
    }
    let top = 64 - (lo ^ hi).leading_zeros(); // number of significant differing bits
    let bits = (usize::BITS - n.leading_zeros()).saturating_sub(2).clamp(4, 11).min(top);
    let shift = top - bits;
    let mask = (1u64 << bits) - 1;
    let nd = 1usize << bits;
    let digit = |x: &T| ((key(x) >> shift) & mask) as usize;
    let (cnt, deeper) = counts.split_at_mut(2048);
    let cnt = &mut cnt[..nd];
    cnt.fill(0);
    for x in a.iter() {
        cnt[digit(x)] += 1;
    }
    // Exclusive prefix sums give each digit's first slot; after the scatter `cnt[d]` is the end
    // of bucket d.
    let mut acc = 0u32;
    for c in cnt.iter_mut() {
        let t = *c;
        *c = acc;
        acc += t;
    }
    for x in a.iter() {
        let d = digit(x);
        b[cnt[d] as usize] = *x;
        cnt[d] += 1;
    }
    let mut start = 0usize;
    for &c in cnt.iter() {
        let end = c as usize;
        if end > start {
            msd_rec(&mut b[start..end], &mut a[start..end], key, !out_in_a, deeper);
        }
        start = end;
    }
}

/// Indices `0..values.len()` ordered by value (stable: equal values keep index order).
pub(crate) fn argsort_f64(values: &[f64]) -> Vec<u32> {
    let mut pairs: Vec<(u64, u32)> = values.iter().enumerate().map(|(i, &x)| (f64_key(x), i as u32)).collect();
    let mut buf = pairs.clone();
    msd_sort(&mut pairs, &mut buf, &|p: &(u64, u32)| p.0);
    pairs.into_iter().map(|p| p.1).collect()
}

/// Dense ranks (0-based; equal values share a rank) and the number of distinct values.
pub(crate) fn dense_ranks(values: &[f64]) -> (Vec<u32>, usize) {
    let order = argsort_f64(values);
    let mut ranks = vec![0u32; values.len()];
    let mut r = 0u32;
    let mut prev: Option<u64> = None;
    for &i in &order {
        let k = f64_key(values[i as usize]);
        if let Some(p) = prev {
            if p != k {
                r += 1;
            }
        }
        prev = Some(k);
        ranks[i as usize] = r;
    }
    let m = if values.is_empty() { 0 } else { r as usize + 1 };
    (ranks, m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radix_matches_std_sort_and_is_stable() {
        let mut x: u64 = 88172645463325252;
        let mut vals = Vec::new();
        for i in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = ((x % 2001) as f64 - 1000.0) / 7.0;
            vals.push(if i % 97 == 0 { -0.0 } else { v });
        }
        let order = argsort_f64(&vals);
        let mut big = vals.clone();
        big.extend(vals.iter().map(|v| v * 1e300));
        let ob = argsort_f64(&big);
        assert!(ob
            .windows(2)
            .all(|w| big[w[0] as usize] < big[w[1] as usize]
                || (big[w[0] as usize] == big[w[1] as usize] && w[0] < w[1])));
        let mut expect: Vec<u32> = (0..vals.len() as u32).collect();
        expect.sort_by(|&a, &b| vals[a as usize].partial_cmp(&vals[b as usize]).unwrap());
        assert_eq!(order, expect);
        let (ranks, m) = dense_ranks(&vals);
        let mut u = vals.clone();
        u.sort_by(|a, b| a.partial_cmp(b).unwrap());
        u.dedup();
        assert_eq!(m, u.len());
        for (i, v) in vals.iter().enumerate() {
            assert_eq!(u[ranks[i] as usize], *v);
        }
    }
}
