//! Private sorting helpers: order-preserving `u64` keys for `f64` and an LSD radix sort of
//! `(key, index)` pairs. Every estimator sorts by time (and concordance by risk) first; a radix
//! sort of packed keys is several times faster than a comparison sort of `f64` and is stable,
//! so results never depend on the sort's tie order.

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

/// Stable LSD radix sort of `(key, payload)` pairs by key, 8 bits per pass, skipping passes in
/// which every key has the same digit.
#[allow(clippy::type_complexity)]
pub(crate) fn radix_sort_pairs(v: &mut Vec<(u64, u32)>) {
    let n = v.len();
    if n < 64 {
        v.sort_by_key(|p| p.0);
        return;
    }
    let mut counts = vec![[0usize; 256]; 8];
    for &(k, _) in v.iter() {
        for (d, c) in counts.iter_mut().enumerate() {
            c[((k >> (8 * d)) & 0xff) as usize] += 1;
        }
    }
    let mut buf: Vec<(u64, u32)> = vec![(0, 0); n];
    let mut src_is_v = true;
    for (d, c) in counts.iter().enumerate() {
        if c.contains(&n) {
            continue;
        }
        let mut offs = [0usize; 256];
        let mut acc = 0;
        for (o, &x) in offs.iter_mut().zip(c.iter()) {
            *o = acc;
            acc += x;
        }
        let (src, dst): (&[(u64, u32)], &mut [(u64, u32)]) = if src_is_v {
            (&v[..], &mut buf[..])
        } else {
            (&buf[..], &mut v[..])
        };
        let shift = 8 * d;
        for &p in src.iter() {
            let b = ((p.0 >> shift) & 0xff) as usize;
            dst[offs[b]] = p;
            offs[b] += 1;
        }
        src_is_v = !src_is_v;
    }
    if !src_is_v {
        *v = buf;
    }
}

/// Stable LSD radix sort of plain `u64` keys (8 bits per pass, trivial passes skipped).
pub(crate) fn radix_sort_u64(v: &mut Vec<u64>) {
    let n = v.len();
    if n < 64 {
        v.sort_unstable();
        return;
    }
    let mut counts = vec![[0usize; 256]; 8];
    for &k in v.iter() {
        for (d, c) in counts.iter_mut().enumerate() {
            c[((k >> (8 * d)) & 0xff) as usize] += 1;
        }
    }
    let mut buf: Vec<u64> = vec![0; n];
    let mut src_is_v = true;
    for (d, c) in counts.iter().enumerate() {
        if c.contains(&n) {
            continue;
        }
        let mut offs = [0usize; 256];
        let mut acc = 0;
        for (o, &x) in offs.iter_mut().zip(c.iter()) {
            *o = acc;
            acc += x;
        }
        let (src, dst): (&[u64], &mut [u64]) = if src_is_v {
            (&v[..], &mut buf[..])
        } else {
            (&buf[..], &mut v[..])
        };
        let shift = 8 * d;
        for &k in src.iter() {
            let b = ((k >> shift) & 0xff) as usize;
            dst[offs[b]] = k;
            offs[b] += 1;
        }
        src_is_v = !src_is_v;
    }
    if !src_is_v {
        *v = buf;
    }
}

/// Sorts items whose order agrees with the finite numbers `values` (item `i` belongs to
/// `values[i]`): one counting pass over `n` equal-width value buckets, then a small sort per
/// bucket. `O(n)` for spread-out values; a bucket of many equal values is sorted by pdqsort,
/// which is linear on equal keys. Returns `None` (caller falls back to radix) when the value
/// range is not finite.
pub(crate) fn bucket_sort<T: Copy + Ord + Default>(
    values: &[f64],
    item: impl Fn(usize) -> T,
) -> Option<Vec<T>> {
    let n = values.len();
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    let range = hi - lo;
    if !(range.is_finite()) {
        return None;
    }
    let nb = n.max(1);
    let scale = if range > 0.0 { nb as f64 / range } else { 0.0 };
    let bucket = |v: f64| (((v - lo) * scale) as usize).min(nb - 1);
    let mut start = vec![0u32; nb + 1];
    for &v in values {
        start[bucket(v) + 1] += 1;
    }
    for b in 0..nb {
        start[b + 1] += start[b];
    }
    let mut fill = start.clone();
    let mut out = vec![T::default(); n];
    for (i, &v) in values.iter().enumerate() {
        let b = bucket(v);
        out[fill[b] as usize] = item(i);
        fill[b] += 1;
    }
    for b in 0..nb {
        let (s, e) = (start[b] as usize, start[b + 1] as usize);
        if e - s > 1 {
            out[s..e].sort_unstable();
        }
    }
    Some(out)
}

/// Indices `0..values.len()` ordered by value (stable: equal values keep index order).
pub(crate) fn argsort_f64(values: &[f64]) -> Vec<u32> {
    if values.len() >= 256 {
        if let Some(pairs) = bucket_sort(values, |i| (f64_key(values[i]), i as u32)) {
            return pairs.into_iter().map(|p| p.1).collect();
        }
    }
    let mut pairs: Vec<(u64, u32)> = values
        .iter()
        .enumerate()
        .map(|(i, &x)| (f64_key(x), i as u32))
        .collect();
    radix_sort_pairs(&mut pairs);
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
        let ob = argsort_f64(&big); // range overflows: radix fallback
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
