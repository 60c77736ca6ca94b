//! The committed C header, `include/uptake.h`: it is exactly what cbindgen makes of `src/ffi`
//! (regenerate it with `UPTAKE_BLESS=1 cargo test --test header`), and it declares only the
//! library's own names: every macro, type and function starts with `UPTAKE_`, `Uptake` or
//! `uptake_`, so that a host's names never collide with ours and no declaration refers to
//! something the header does not define.

use std::path::Path;

/// The header cbindgen generates from `src/ffi` (and the modules it declares) alone: the C ABI,
/// which no public item elsewhere in the crate can reach.
fn generated_header() -> String {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).unwrap();
    let bindings = cbindgen::Builder::new()
        .with_src(crate_dir.join("src/ffi/mod.rs"))
        .with_config(config)
        .generate()
        .unwrap();
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn the_committed_header_is_what_cbindgen_generates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/uptake.h");
    let generated = generated_header();
    if std::env::var_os("UPTAKE_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "the end".to_string(), |i| format!("line {}", i + 1));
        panic!(
            "include/uptake.h differs from what cbindgen generates (first at {line}); run \
             UPTAKE_BLESS=1 cargo test --test header and commit the header"
        );
    }
}

/// The name each declaring line of the header introduces, with its line number.
fn declared_names(header: &str) -> Vec<(usize, String)> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = Vec::new();
    for (i, line) in header.lines().enumerate() {
        let line = line.trim_start();
        let name = if let Some(rest) = line.strip_prefix("#define ") {
            ident(rest)
        } else if let Some(rest) = line.strip_prefix("typedef struct ") {
            // `typedef struct Name Name;` or `typedef struct Name {`.
            ident(rest)
        } else if line.starts_with("typedef ") && line.contains("(*") {
            // A function-pointer type: `typedef R (*Name)(…);`.
            ident(&line[line.find("(*").unwrap() + 2..])
        } else if line.starts_with('}') && line.ends_with(';') && line.len() > 2 {
            // The name closing a `typedef struct { … } Name;`.
            ident(line.trim_start_matches(['}', ' ']))
        } else if let Some(open) = line.find('(').filter(|_| !line.starts_with("//")) {
            // A function declaration `R name(…`: the identifier just before the parenthesis.
            let head = &line[..open];
            head.rsplit([' ', '*'])
                .next()
                .map(ident)
                .unwrap_or_default()
        } else {
            continue;
        };
        if !name.is_empty() {
            names.push((i + 1, name));
        }
    }
    names
}

#[test]
fn every_name_in_the_header_is_prefixed() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/uptake.h");
    let header = std::fs::read_to_string(&path).unwrap();
    let names = declared_names(&header);
    assert!(names.len() > 50, "only {} declarations found", names.len());
    let include_guard = ["UPTAKE_H"];
    let foreign: Vec<_> = names
        .iter()
        .filter(|(_, n)| {
            let ours =
                n.starts_with("UPTAKE_") || n.starts_with("Uptake") || n.starts_with("uptake_");
            !(ours || include_guard.contains(&n.as_str()))
        })
        .collect();
    assert!(
        foreign.is_empty(),
        "unprefixed names in uptake.h: {foreign:?}"
    );
}

#[test]
fn the_name_reader_sees_each_kind_of_declaration() {
    let sample = "#define KernelThing 1\n\
                  typedef struct Foo Foo;\n\
                  typedef uint32_t (*Callback)(uint32_t x);\n\
                  } Table;\n\
                  uint32_t do_it(const struct Foo *foo);\n\
                  // a comment (with parentheses)\n";
    let names: Vec<String> = declared_names(sample).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["KernelThing", "Foo", "Callback", "Table", "do_it"]);
}
