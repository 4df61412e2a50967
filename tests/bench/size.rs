//! Where the bundle's bytes go: the size of each function body in the wasm
//! code section, named by the symbol map `scripts/build-worker` keeps, summed
//! by the crate that starts each function's name (so `<idp::X as
//! serde::Deserialize>::deserialize` counts for `idp`, and drop glue for
//! `core`).

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// The recorded profile of the bundle before the size work (commit 5ddbe5a),
/// made with `bench --size-profile <wasm> <symbols>`.
pub const BASELINE: &str = include_str!("size-baseline.json");

fn leb(b: &[u8], i: &mut usize) -> Option<u64> {
    let (mut r, mut shift) = (0u64, 0);
    loop {
        let x = *b.get(*i)?;
        *i += 1;
        r |= u64::from(x & 0x7f) << shift;
        if x < 0x80 {
            return Some(r);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

fn skip_name(b: &[u8], i: &mut usize) -> Option<()> {
    let n = usize::try_from(leb(b, i)?).ok()?;
    *i += n;
    Some(())
}

fn skip_limits(b: &[u8], i: &mut usize) -> Option<()> {
    let flags = *b.get(*i)?;
    *i += 1;
    leb(b, i)?;
    if flags & 1 != 0 {
        leb(b, i)?;
    }
    Some(())
}

/// The body size of every function, by function index (imports first).
fn function_sizes(wasm: &[u8]) -> Option<Vec<(u64, usize)>> {
    if wasm.get(..4)? != b"\0asm" {
        return None;
    }
    let (mut i, mut imported, mut out) = (8usize, 0usize, Vec::new());
    while i < wasm.len() {
        let id = wasm[i];
        i += 1;
        let len = usize::try_from(leb(wasm, &mut i)?).ok()?;
        let end = i.checked_add(len)?;
        let mut j = i;
        match id {
            2 => {
                for _ in 0..leb(wasm, &mut j)? {
                    skip_name(wasm, &mut j)?;
                    skip_name(wasm, &mut j)?;
                    let kind = *wasm.get(j)?;
                    j += 1;
                    match kind {
                        0 => {
                            leb(wasm, &mut j)?;
                            imported += 1;
                        }
                        1 => {
                            j += 1;
                            skip_limits(wasm, &mut j)?;
                        }
                        2 => skip_limits(wasm, &mut j)?,
                        3 => j += 2,
                        4 => {
                            j += 1;
                            leb(wasm, &mut j)?;
                        }
                        _ => return None,
                    }
                }
            }
            10 => {
                for f in 0..leb(wasm, &mut j)? {
                    let body = leb(wasm, &mut j)?;
                    out.push((body, imported + usize::try_from(f).ok()?));
                    j += usize::try_from(body).ok()?;
                }
            }
            _ => {}
        }
        i = end;
    }
    Some(out)
}

/// The crate a symbol's name starts with (the entry futures apart); for `<T as Trait>::f` where `T` is
/// a primitive (`<f64 as core::fmt::Display>::fmt`), the trait's.
fn crate_of(symbol: &str) -> String {
    // The Worker's and the object's entry futures, with everything they
    // await inlined: named after the wrapper that polls them.
    if symbol.contains("future_to_promise::{{closure}}")
        || symbol.contains("AssertUnwindSafe<F> as core::future")
    {
        return "(entry futures, inlined)".to_owned();
    }
    let clean = |s: &str| {
        s.trim_start_matches(['<', '&'])
            .trim_start_matches("mut ")
            .trim_start_matches("dyn ")
            .to_owned()
    };
    let s = clean(symbol);
    let s = match s.split_once(" as ") {
        Some((ty, rest)) if !ty.contains("::") => clean(rest),
        _ => s,
    };
    match s.find("::") {
        Some(n) => s[..n].split('[').next().unwrap_or("").to_owned(),
        None => "(glue and shims)".to_owned(),
    }
}

/// The code size by crate, largest first, and the largest functions.
pub fn profile(wasm: &Path, symbols: &Path) -> Value {
    let bytes = std::fs::read(wasm).unwrap_or_default();
    let names: BTreeMap<usize, String> = std::fs::read_to_string(symbols)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (i, n) = l.split_once(':')?;
            Some((i.parse().ok()?, n.to_owned()))
        })
        .collect();
    let Some(mut sizes) = function_sizes(&bytes) else {
        return json!({ "error": format!("{} is not a wasm module this reads", wasm.display()) });
    };
    sizes.sort_by(|a, b| b.cmp(a));
    let name = |i: usize| names.get(&i).cloned().unwrap_or_else(|| format!("#{i}"));
    let mut by_crate: BTreeMap<String, u64> = BTreeMap::new();
    for (len, i) in &sizes {
        *by_crate.entry(crate_of(&name(*i))).or_default() += len;
    }
    let mut crates: Vec<(String, u64)> = by_crate.into_iter().collect();
    crates.sort_by_key(|c| std::cmp::Reverse(c.1));
    let strip_hash = |n: String| match n.rfind("::h") {
        Some(k) if n.len() - k == 19 => n[..k].to_owned(),
        _ => n,
    };
    json!({
        "code_bytes": sizes.iter().map(|s| s.0).sum::<u64>(),
        "functions": sizes.len(),
        "by_crate": crates.iter().take(10).map(|(c, n)| json!({ "crate": c, "bytes": n })).collect::<Vec<_>>(),
        "largest_functions": sizes.iter().take(10).map(|(n, i)| {
            let mut f = strip_hash(name(*i));
            f.truncate(120);
            json!({ "function": f, "bytes": n })
        }).collect::<Vec<_>>(),
    })
}

/// The top-10 table, before and after, as printed lines.
pub fn print(before: &Value, after: &Value) {
    println!("\nwasm code by crate (top 10; bytes of function bodies)");
    println!(
        "  {:<24} {:>9}   {:<24} {:>9}",
        "before (5ddbe5a)", "", "now", ""
    );
    let list = |v: &Value| v["by_crate"].as_array().cloned().unwrap_or_default();
    let (b, a) = (list(before), list(after));
    for k in 0..10 {
        let cell = |v: &[Value]| {
            v.get(k)
                .map(|e| {
                    (
                        e["crate"].as_str().unwrap_or("").to_owned(),
                        e["bytes"].as_u64().unwrap_or(0).to_string(),
                    )
                })
                .unwrap_or_default()
        };
        let ((bc, bn), (ac, an)) = (cell(&b), cell(&a));
        println!("  {bc:<24} {bn:>9}   {ac:<24} {an:>9}");
    }
    println!(
        "  {:<24} {:>9}   {:<24} {:>9}",
        "all code",
        before["code_bytes"].as_u64().unwrap_or(0),
        "all code",
        after["code_bytes"].as_u64().unwrap_or(0)
    );
    println!("largest functions now:");
    for f in after["largest_functions"].as_array().into_iter().flatten() {
        println!(
            "  {:>7}  {}",
            f["bytes"].as_u64().unwrap_or(0),
            f["function"].as_str().unwrap_or("")
        );
    }
}
