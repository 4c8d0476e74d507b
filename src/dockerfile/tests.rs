//! The reader and the pre-flight on Dockerfiles written as users write them.

use std::path::Path;

use super::*;
use crate::finding::FindingKind;

const CROSS: &str = "\
# syntax=docker/dockerfile:1
FROM --platform=$BUILDPLATFORM golang:1.22 AS build
ARG TARGETOS TARGETARCH
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH \\
    go build -o /out/app .
FROM scratch
COPY --from=build /out/app /app
";

#[test]
fn stages_names_and_lines() {
    let df = parse(CROSS);
    assert_eq!(df.stages.len(), 2);
    assert_eq!(df.stage_names(), vec!["build"]);
    assert_eq!(
        df.stages[0].platform_flag.as_deref(),
        Some("$BUILDPLATFORM")
    );
    assert_eq!(df.stages[0].instructions[1].line, 4);
    assert_eq!(
        df.stages[0].instructions[1].args,
        "GOOS=$TARGETOS GOARCH=$TARGETARCH  go build -o /out/app ."
    );
    assert_eq!(df.stages[1].line, 6);
    assert!(!df.runs_on_target(None));
    assert!(preflight(&df, Path::new("Dockerfile")).is_empty());
}

#[test]
fn compiling_on_the_target_platform_is_flagged_with_file_and_line() {
    let df = parse("FROM golang:1.22 AS build\nCOPY . .\nRUN go build -o /app .\nFROM scratch\nCOPY --from=build /app /app\n");
    assert!(df.runs_on_target(None));
    let findings = preflight(&df, Path::new("docker/Dockerfile"));
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].kind, FindingKind::DockerfileArch);
    assert!(findings[0]
        .message
        .starts_with("docker/Dockerfile:3: stage build compiles (`go build`)"));
}

#[test]
fn inherited_build_platform_counts() {
    let df = parse("FROM --platform=$BUILDPLATFORM rust AS base\nFROM base AS build\nRUN cargo build --release\n");
    assert!(df.on_build_platform()[1]);
    assert!(preflight(&df, Path::new("Dockerfile")).is_empty());
}

#[test]
fn hard_coded_architectures_are_flagged_unless_target_arch_decides() {
    let df = parse(
        "FROM alpine\n\
         RUN wget https://example.com/tool-linux-amd64.tar.gz\n\
         ADD https://example.com/x_Linux_x86_64.tgz /tmp/\n\
         RUN if [ \"$TARGETARCH\" = arm64 ]; then echo ok; fi\n\
         RUN echo darwin64\n",
    );
    let findings = preflight(&df, Path::new("Dockerfile"));
    let lines: Vec<&str> = findings.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(findings.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("Dockerfile:2: RUN hard-codes `amd64`"));
    assert!(lines[1].starts_with("Dockerfile:3: ADD hard-codes `x86_64`"));
}

#[test]
fn heredoc_bodies_belong_to_their_run() {
    let df = parse("FROM debian\nRUN <<EOF\nset -e\nmake all\nEOF\nCOPY x /x\n");
    let stage = &df.stages[0];
    assert_eq!(stage.instructions.len(), 2);
    assert_eq!(stage.instructions[1].keyword, "COPY");
    assert_eq!(stage.instructions[1].line, 6);
    let findings = preflight(&df, Path::new("Dockerfile"));
    assert!(findings[0].message.contains("`make`"), "{findings:?}");
}

#[test]
fn the_escape_directive_makes_the_backtick_the_continuation() {
    let text = "# escape=`\nFROM mcr.microsoft.com/windows/servercore\nRUN dir C:\\ `\n    && echo done\nCOPY a\\ b\n";
    let df = parse(text);
    assert_eq!(df.escape, '`');
    let run = &df.stages[0].instructions;
    assert_eq!(run.len(), 2, "{run:?}");
    assert_eq!(run[0].args, "dir C:\\  && echo done");
    assert_eq!((run[1].keyword.as_str(), run[1].line), ("COPY", 5));
}

#[test]
fn a_directive_after_an_instruction_or_comment_is_a_comment() {
    for text in [
        "# a comment\n# escape=`\nFROM alpine\nRUN a \\\n b\n",
        "FROM alpine\n# escape=`\nRUN a \\\n b\n",
        "# unknown=1\n# escape=`\nFROM alpine\nRUN a \\\n b\n",
    ] {
        let df = parse(text);
        assert_eq!(df.escape, '\\', "{text}");
        assert_eq!(df.stages[0].instructions.len(), 1, "{text}");
    }
    // Several known directives, any case and spacing, before the first instruction.
    let df = parse("# syntax=docker/dockerfile:1\n#ESCAPE = `\nFROM alpine\n");
    assert_eq!(df.escape, '`');
}

#[test]
fn comments_and_empty_lines_inside_a_continuation_are_dropped() {
    let df = parse("FROM debian\nRUN apt-get update && \\\n# the tools\n\n    apt-get install -y make\nCOPY . /src\n");
    let ins = &df.stages[0].instructions;
    assert_eq!(ins.len(), 2, "{ins:?}");
    assert_eq!(ins[0].args, "apt-get update &&  apt-get install -y make");
    assert_eq!(ins[1].line, 6);
}

#[test]
fn heredocs_of_every_spelling_end_at_their_own_word() {
    let text = "FROM debian\n\
                RUN <<-eot bash\n\tFROM not-a-stage\n\teot\n\
                COPY <<'CONF' /etc/app.conf\nRUN inside the file\nCONF\n\
                RUN cat <<< \"here-string\" && echo $((1<<2))\n\
                RUN 3<<A cat /dev/fd/3\nx\nA\n";
    let df = parse(text);
    assert_eq!(df.stages.len(), 1, "a heredoc line is not a stage");
    let ins = &df.stages[0].instructions;
    let got: Vec<_> = ins.iter().map(|i| (i.keyword.as_str(), i.line)).collect();
    assert_eq!(got, [("RUN", 2), ("COPY", 5), ("RUN", 8), ("RUN", 9)]);
    assert!(
        ins[0].args.ends_with("\tFROM not-a-stage"),
        "{:?}",
        ins[0].args
    );
    assert!(ins[1].args.contains("RUN inside the file"));
    // Heredocs are read only on RUN, COPY and ADD.
    let df = parse("FROM debian\nLABEL note=<<EOF\nRUN make\n");
    assert_eq!(df.stages[0].instructions.len(), 2);
}

#[test]
fn global_args_are_expanded_in_from_lines_only_with_their_defaults() {
    let df = parse("ARG REG=reg.test BASE\nARG TAG=\"1.2\"\nFROM ${REG}/debian:$TAG AS a\nARG LATE=x\nFROM ${BASE:-alpine}:${LATE}\n");
    assert_eq!(df.global_args.len(), 3);
    assert_eq!(
        df.expand_global_args(&df.stages[0].base),
        "reg.test/debian:1.2"
    );
    assert_eq!(df.expand_global_args(&df.stages[1].base), "alpine:${LATE}");
    assert_eq!(df.expand_global_args("$"), "$");
    assert_eq!(df.expand_global_args("${REG"), "${REG");
}

#[test]
fn a_long_chain_of_stages_is_followed_without_recursion() {
    let mut text = String::from("FROM --platform=$BUILDPLATFORM golang AS s0\n");
    for i in 1..20_000 {
        text.push_str(&format!("FROM s{} AS s{i}\n", i - 1));
    }
    text.push_str("RUN go build\n");
    let df = parse(&text);
    assert!(df.on_build_platform().iter().all(|&b| b));
    assert!(!df.runs_on_target(None));
}
