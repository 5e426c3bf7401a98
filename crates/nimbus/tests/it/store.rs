//! The store through the CLI: buckets, upload, list, download, delete, digests.

use crate::harness::{Backend, Nimbus, write_file};

#[test]
fn store_cp_ls_rm_round_trip() {
    let n = Nimbus::start(&Backend::Sqlite);
    n.ok(&["store", "mb", "s3://data"]);
    let src = write_file(n.data_dir(), "train.csv", "a,b\n1,2\n");
    let up = n.json(&["store", "cp", src.to_str().unwrap(), "s3://data/titanic/"]);
    assert_eq!(up["key"], "titanic/train.csv");
    assert_eq!(up["content_type"], "text/csv");
    assert_eq!(up["sha256"], hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"a,b\n1,2\n")));
    n.ok(&["store", "cp", "s3://data/titanic/train.csv", "s3://data/copy/with space.csv"]);
    let listed = n.json(&["store", "ls", "s3://data/"]);
    let keys: Vec<&str> = listed.as_array().unwrap().iter().map(|o| o["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["copy/with space.csv", "titanic/train.csv"]);
    let only = n.json(&["store", "ls", "s3://data/titanic/"]);
    assert_eq!(only.as_array().unwrap().len(), 1);
    let dst = n.data_dir().join("back.csv");
    n.ok(&["store", "cp", "s3://data/copy/with space.csv", dst.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&dst).unwrap(), "a,b\n1,2\n");
    let (code, _, err) = n.cli(&["store", "rb", "s3://data"]);
    assert_eq!(code, 2);
    assert!(err.contains("is not empty"), "{err}");
    n.ok(&["store", "rm", "s3://data/copy/with space.csv"]);
    n.ok(&["store", "rm", "s3://data/titanic/train.csv"]);
    n.ok(&["store", "rb", "s3://data"]);
    assert!(!n.ok(&["store", "ls"]).contains("data"));
}
