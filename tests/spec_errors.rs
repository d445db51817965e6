//! One test per spec error class: each must name file:line:column and say what was expected.
use spatia::spec::{compile_str, SpecError};
use std::path::PathBuf;

fn root() -> PathBuf {
    let d = std::env::temp_dir().join("spatia-spec-errors");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("clin.csv"), "patient_id,time,event\np1,1,1\n").unwrap();
    d
}

/// Compiles `yaml` and checks the error's line, column and message fragments.
fn check(yaml: &str, line: usize, col: usize, fragments: &[&str]) {
    let r = root();
    match compile_str(yaml, "spec.yaml", r.join("spec.yaml"), r) {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(SpecError::At { file, line: l, col: c, msg }) => {
            let full = format!("{file}:{l}:{c}: {msg}");
            assert_eq!((l, c), (line, col), "wrong position in `{full}`");
            assert_eq!(file, "spec.yaml");
            for f in fragments {
                assert!(msg.contains(f), "`{full}` does not contain `{f}`");
            }
        }
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

#[test]
fn yaml_syntax() {
    check("name: x\nstages:\n  a: {kind: command, cmd: 'x'\n", 4, 1, &["flow mapping"]);
}

#[test]
fn unknown_top_level_key() {
    check("name: x\nstagez: {}\nstages:\n  a: {kind: command, cmd: x}\n", 2, 1, &["unknown field `stagez`", "stages"]);
}

#[test]
fn unknown_stage_parameter() {
    check(
        "name: x\nstages:\n  a:\n    kind: command\n    cmd: x\n    cmmd: y\n",
        6,
        5,
        &["unknown field `cmmd`", "expected one of", "cmd"],
    );
}

#[test]
fn wrong_type_top_level() {
    check("name: x\nseed: seven\nstages:\n  a: {kind: command, cmd: x}\n", 2, 7, &["seed", "expected u64"]);
}

#[test]
fn wrong_type_stage_parameter() {
    check(
        "name: x\nstages:\n  a:\n    kind: command\n    cmd: [1, 2]\n",
        5,
        10,
        &["invalid type", "expected a string"],
    );
}

#[test]
fn unknown_kind_with_suggestion() {
    check(
        "name: x\nstages:\n  a: {kind: comand, cmd: x}\n",
        3,
        13,
        &["unknown stage kind `comand`", "did you mean `command`"],
    );
}

#[test]
fn needs_missing_stage() {
    check(
        "name: x\nstages:\n  a: {kind: command, cmd: x}\n  b: {kind: command, cmd: y, needs: [a, aa]}\n",
        4,
        41,
        &["needs `aa`", "not a stage", "did you mean `a`"],
    );
}

#[test]
fn cycle_prints_its_path() {
    check(
        "name: x\nstages:\n  a: {kind: command, cmd: x, needs: [c]}\n  b: {kind: command, cmd: y, needs: [a]}\n  c: {kind: command, cmd: z, needs: [b]}\n",
        3,
        37,
        &["cycle", "a → c → b → a"],
    );
}

#[test]
fn duplicate_stage_names() {
    check(
        "name: x\nstages:\n  a: {kind: command, cmd: x}\n  a: {kind: command, cmd: y}\n",
        4,
        3,
        &["duplicate stage name `stages.a`", "first written at line 3"],
    );
}

#[test]
fn matrix_path_names_no_parameter() {
    check(
        "name: x\nstages:\n  a: {kind: command, cmd: x}\nmatrix:\n  a.shel: [bash, sh]\n",
        5,
        3,
        &["matrix path `a.shel` names no parameter"],
    );
    check("name: x\nstages:\n  a: {kind: command, cmd: x}\nmatrix:\n  b.cmd: [x, y]\n", 5, 3, &["names no stage `b`"]);
}

#[test]
fn matrix_value_of_wrong_type_points_at_the_matrix() {
    check(
        "name: x\nstages:\n  a: {kind: command, cmd: x}\nmatrix:\n  a.cmd: [x, 3]\n",
        5,
        14,
        &["matrix", "expected a string"],
    );
}

#[test]
fn input_file_missing() {
    check(
        "name: x\nstages:\n  a: {kind: command, cmd: x, inputs: [nope.csv]}\n",
        3,
        39,
        &["input file `nope.csv` does not exist"],
    );
    check(
        "name: x\ncohort:\n  clinical: missing.csv\nstages:\n  i: {kind: ingest}\n",
        3,
        13,
        &["input file `missing.csv` does not exist"],
    );
}

#[test]
fn output_path_escapes_project() {
    check(
        "name: x\nstages:\n  a: {kind: command, cmd: x, publish: ../../etc}\n",
        3,
        39,
        &["escapes the project directory"],
    );
    check(
        "name: x\nstages:\n  a: {kind: command, cmd: x, publish: /tmp/x}\n",
        3,
        39,
        &["escapes the project directory"],
    );
}

#[test]
fn nested_publish_directories() {
    check(
        "name: x\nstages:\n  a: {kind: command, cmd: x, publish: reports/x}\n  b: {kind: command, cmd: x, publish: ./reports/x/qc}\n",
        4,
        39,
        &["publish directory `./reports/x/qc` of stage `b` is inside `reports/x` of stage `a`"],
    );
}

#[test]
fn stage_without_kind() {
    check("name: x\nstages:\n  a: {cmd: x}\n", 3, 3, &["has no `kind`", "command"]);
}

#[test]
fn valid_spec_compiles_with_arms() {
    let r = root();
    let yaml = "name: x\ncohort: {clinical: clin.csv}\nstages:\n  i: {kind: ingest}\n  a: {kind: command, cmd: x, needs: [i]}\nmatrix:\n  a.cmd: [x, y]\n";
    let s = compile_str(yaml, "spec.yaml", r.join("spec.yaml"), r).unwrap();
    assert_eq!(s.arms.len(), 2);
    assert_eq!(s.arms[0].name, "cmd=x");
    assert_eq!(s.arms[1].name, "cmd=y");
}

#[test]
fn stage_and_experiment_names_follow_the_rule() {
    check("name: ''\nstages:\n  a: {kind: command, cmd: x}\n", 1, 7, &["experiment name `` is empty"]);
    check("name: x\nstages:\n  '..': {kind: command, cmd: x}\n", 3, 3, &["stage name `..` starts with `.`"]);
    check(
        "name: x\nstages:\n  a-b: {kind: command, cmd: x}\n  a_b: {kind: command, cmd: x}\n",
        4,
        3,
        &["`a-b` and `a_b`", "SPATIA_NEEDS_A_B"],
    );
    check("name: \"a\\u202Eb\"\nstages:\n  a: {kind: command, cmd: x}\n", 1, 7, &["a<U+202E>b", "contains U+202E"]);
}

#[test]
fn a_matrix_entry_names_a_dotted_stage_by_its_longest_name() {
    let r = root();
    let yaml = "name: x\nstages:\n  pre: {kind: command, cmd: a}\n  pre.b: {kind: command, cmd: b, needs: [pre]}\nmatrix:\n  pre.b.cmd: [c, d]\n";
    let s = compile_str(yaml, "spec.yaml", r.join("spec.yaml"), r).unwrap();
    assert_eq!(s.arms.len(), 2);
    assert_eq!(s.arms[1].stages[1].checked.params["cmd"], "d");
    assert_eq!(s.arms[1].stages[0].checked.params["cmd"], "a");
}

#[test]
fn the_matrix_is_bounded_before_expansion() {
    let mut yaml = String::from("name: x\nstages:\n  e:\n    kind: command\n    cmd: x\n    p: {");
    yaml.push_str(&(0..12).map(|i| format!("k{i}: 0")).collect::<Vec<_>>().join(", "));
    yaml.push_str("}\nmatrix:\n");
    for i in 0..12 {
        yaml.push_str(&format!("  e.p.k{i}: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n"));
    }
    check(&yaml, 7, 1, &["the matrix has 1000000000000 arms", "from 1 to 1024"]);
}

#[test]
fn matrix_exclude_removes_combinations_and_checks_its_entries() {
    let r = root();
    let base =
        "name: x\nstages:\n  a: {kind: command, cmd: x, shell: sh}\nmatrix:\n  a.cmd: [x, y]\n  a.shell: [sh, bash]\n";
    let ok = format!("{base}  exclude:\n    - {{a.cmd: y, a.shell: bash}}\n");
    let s = compile_str(&ok, "spec.yaml", r.join("spec.yaml"), r.clone()).unwrap();
    let names: Vec<&str> = s.arms.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["cmd=x,shell=sh", "cmd=x,shell=bash", "cmd=y,shell=sh"]);
    check(&format!("{base}  exclude:\n    - {{a.cmd: z}}\n"), 8, 7, &["`a.cmd: z` is not one of the matrix values"]);
    check(
        &format!("{base}  exclude:\n    - {{a.cwd: x}}\n"),
        8,
        7,
        &["`a.cwd` is not a matrix path", "a.cmd, a.shell"],
    );
    check(&format!("{base}  exclude:\n    - {{a.cmd: x}}\n    - {{a.cmd: y}}\n"), 8, 5, &["removes every arm"]);
    check(&format!("{base}  exclude: {{a.cmd: x}}\n"), 7, 12, &["must be a list"]);
}
