//! The documentation tells the truth about the command line: every flag README's usage block
//! gives a subcommand is one that the subcommand's `--help` lists, and the product's documents
//! speak of the product, not of how it was made.

use std::collections::BTreeMap;

mod common;

/// The first ```sh block after README's "## Using it".
fn usage_block(readme: &str) -> &str {
    let section = readme
        .split("\n## Using it")
        .nth(1)
        .expect("README has a \"## Using it\" section");
    let start = section.find("```sh\n").expect("a sh block in Using it") + "```sh\n".len();
    let len = section[start..].find("```").expect("the sh block ends");
    &section[start..start + len]
}

/// `(binary, subcommand)` → the long flags the block gives it.
fn flags_by_command(block: &str) -> BTreeMap<(String, String), Vec<String>> {
    let mut found: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for line in block.lines() {
        // A pipe starts another program (`| ffplay -`); a `#` starts the comment.
        let command = line.split(" | ").next().unwrap_or("");
        let command = command.split(" #").next().unwrap_or("");
        let mut words = command.split_whitespace();
        let (Some(binary), Some(sub)) = (words.next(), words.next()) else {
            continue;
        };
        if !matches!(binary, "aecodec" | "aeplay" | "aetrain") {
            continue;
        }
        let entry = found.entry((binary.into(), sub.into())).or_default();
        for word in words.filter(|w| w.starts_with("--")) {
            entry.push(word.trim_end_matches(',').to_string());
        }
    }
    found
}

#[test]
fn every_flag_in_the_readme_usage_is_in_the_commands_help() {
    let readme = std::fs::read_to_string(common::root().join("README.md")).unwrap();
    let commands = flags_by_command(usage_block(&readme));
    assert!(
        commands.len() >= 8,
        "the usage block names too few commands: {commands:?}"
    );
    let mut missing = Vec::new();
    for ((binary, sub), flags) in &commands {
        let help = common::run_ok(binary, &[sub, "--help"]);
        for flag in flags {
            let listed = help
                .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
                .any(|w| w == flag || w.starts_with(&format!("{flag}=")));
            if !listed {
                missing.push(format!("{binary} {sub} {flag}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "README's usage names flags that --help does not list: {missing:?}"
    );
}

#[test]
fn the_usage_check_sees_a_flag_that_does_not_exist() {
    let block = "aecodec encode a.mp4 -o a.aez --qualty 6   # typo\nls -l\n";
    let commands = flags_by_command(block);
    assert_eq!(
        commands[&("aecodec".to_string(), "encode".to_string())],
        vec!["--qualty".to_string()]
    );
    let help = common::run_ok("aecodec", &["encode", "--help"]);
    assert!(!help.split_whitespace().any(|w| w == "--qualty"));
}

/// Where a line speaks of how the project is worked on rather than of what it is: a numbered
/// work stop or issue, a machine lease, a work session.
fn process_word(line: &str) -> Option<String> {
    let words: Vec<String> = line
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    for (i, word) in words.iter().enumerate() {
        let numbered = words
            .get(i + 1)
            .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()));
        let hit = match word.as_str() {
            "lease" | "leases" | "session" | "sessions" => true,
            "stop" | "issue" => numbered,
            _ => false,
        };
        if hit {
            return Some(word.clone());
        }
    }
    None
}

#[test]
fn the_documents_speak_of_the_product() {
    let root = common::root();
    let mut documents = vec![
        root.join("README.md"),
        root.join("CHANGELOG.md"),
        root.join("samples/models/README.md"),
        root.join("samples/models/checkpoints/README.md"),
    ];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            documents.push(path);
        }
    }
    let mut found = Vec::new();
    for path in &documents {
        let text = std::fs::read_to_string(path).unwrap();
        for (n, line) in text.lines().enumerate() {
            if let Some(word) = process_word(line) {
                found.push(format!("{}:{}: {word}", path.display(), n + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "process words in the documents: {found:?}"
    );
}

#[test]
fn the_process_check_sees_what_it_looks_for() {
    assert_eq!(process_word("measured in stop 27"), Some("stop".into()));
    assert_eq!(process_word("on the next Lease"), Some("lease".into()));
    assert_eq!(process_word("a release build"), None);
    assert_eq!(process_word("playback stops at 3 s"), None);
    assert_eq!(process_word("stop the player"), None);
}
