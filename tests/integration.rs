//! Integration tests: the real `sfx` binary (assert_cmd) against the in-repo fake
//! Salesforce over real HTTP, each test with its own fake on 127.0.0.1:0, its own
//! temporary SFX_HOME and a scrubbed environment. One test binary (`autotests = false`).

mod common;

mod adversary;
mod advjournal;
mod api;
mod childenv;
mod clients;
mod cluster;
mod cluster_serve;
mod contract;
mod crash;
mod envmode;
mod examples;
mod exec;
mod expires;
mod faults;
mod flows;
mod generated;
mod hardening;
mod hostile;
mod hygiene;
mod introspect;
mod keychain;
mod layers;
mod listen;
mod listen_load;
mod localstore;
mod localstore_edges;
mod locking;
mod login;
mod logout;
mod orgs;
mod orgsjournal;
mod properties;
mod published;
mod quoted;
mod readers;
mod refresh;
mod savefirst;
mod sealed;
mod serve;
mod sfcli;
mod sfcli_imports;
mod shapes;
mod shared;
mod snapshots;
mod storeguard;
mod surface;
mod terminal;
mod token;
mod transport;
mod untrusted;
mod watch;
