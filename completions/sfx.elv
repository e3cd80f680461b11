
use builtin;
use str;

set edit:completion:arg-completer[sfx] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'sfx'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'sfx'= {
            cand -o 'Which stored org (alias or username); default: the default org, or the only one'
            cand --org 'Which stored org (alias or username); default: the default org, or the only one'
            cand --color 'When to use colour'
            cand --store 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)'
            cand --timeout 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)'
            cand --wait 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)'
            cand --json 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
            cand -q 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand --quiet 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand -v 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand --verbose 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand login 'Log in to an org and store it'
            cand introspect 'Ask the org''s introspection endpoint about the access (or refresh) token'
            cand expires 'When does the access token expire, and how sure is that answer?'
            cand refresh 'Get a new access token and store it'
            cand watch 'Stay running: refresh tokens ahead of expiry, keep refresh tokens alive'
            cand token 'Print a valid access token, refreshing first only if needed'
            cand orgs 'List stored orgs (no network, no keychain)'
            cand logout 'Remove an org''s stored credentials'
            cand completions 'Print a shell completion script'
            cand doctor 'Show where credentials are kept and whether the OS keychain works'
            cand api 'Call the org''s REST API with a valid token: refresh first if needed, and once more on a 401'
            cand exec 'Run a command with a valid token in its environment, never on its command line'
            cand store 'Keys of the shared store'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'sfx;login'= {
            cand --auth-url 'Import an SFDX auth URL; `-` reads it from stdin'
            cand --refresh-token 'Import a refresh token read from stdin (give `-`); needs --client-id and --instance-url'
            cand --access-token 'Import an access token read from stdin (give `-`); needs --instance-url. It cannot be refreshed'
            cand --from-sf 'Take an org the Salesforce CLI (`sf`) is logged in to: no new login, no approval slot'
            cand --client-id 'The connected app''s consumer key (client id)'
            cand --username 'The Salesforce username (--jwt, --password; a login hint for --web)'
            cand --key-file 'The RSA private key (PEM, PKCS#1 or PKCS#8) whose certificate is uploaded to the app (--jwt)'
            cand --port 'The local port for the browser''s callback `http://localhost:<PORT>/OauthRedirect` (--web; 0 = any free port)'
            cand --login-timeout 'How long to wait for the browser (--web, default 2m) or the device approval (--device, default: until the code expires); from 1s to 1h'
            cand --scope 'OAuth scopes to ask for, space-separated (--web, --device) [default: the app''s own scopes]'
            cand --instance-url 'The org''s instance URL (its My Domain), e.g. https://acme.my.salesforce.com'
            cand --login-url 'Where to log in [default: https://login.salesforce.com]'
            cand -a 'A short name for this org [default: the username]'
            cand --alias 'A short name for this org [default: the username]'
            cand --session-timeout 'The org''s session timeout, used to estimate expiry when introspection can''t answer (from 1m to 366d)'
            cand --to 'With --migrate: move the org between this machine''s local store and the shared store named by --store / SFX_STORE, with no new login'
            cand -o 'Which stored org (alias or username); default: the default org, or the only one'
            cand --org 'Which stored org (alias or username); default: the default org, or the only one'
            cand --color 'When to use colour'
            cand --store 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)'
            cand --timeout 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)'
            cand --wait 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)'
            cand --web 'Browser login: authorization code with PKCE (the default on a terminal)'
            cand --device 'Device login: prints a code and a URL to enter it at, then waits for approval'
            cand --jwt 'JWT bearer login (unattended): needs --client-id, --username and --key-file'
            cand --client-credentials 'Client credentials login (unattended): needs --client-id, the secret, and the My Domain URL'
            cand --password 'Username-password login (legacy): needs --client-id, the secret and --username'
            cand --no-browser 'Print the login URL on stderr instead of opening a browser (--web)'
            cand --client-secret-stdin 'Read the client secret from stdin (otherwise `SFX_CLIENT_SECRET`, or a prompt on a terminal)'
            cand --sandbox 'Log in at https://test.salesforce.com (sandboxes)'
            cand --set-default 'Make this the default org; with -o ORG and no login flow, mark that stored org as the default (no request, no new login)'
            cand --insecure-storage 'Keep secrets in a 0600 file beside the metadata instead of the OS keychain'
            cand --show-token 'Include the token values in `--json` output'
            cand --migrate 'Move an existing org''s secrets into the OS keychain (or, with --insecure-storage, into the file) without logging in again; the old copies are deleted'
            cand --json 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
            cand -q 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand --quiet 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand -v 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand --verbose 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sfx;introspect'= {
            cand -o 'Which stored org (alias or username); default: the default org, or the only one'
            cand --org 'Which stored org (alias or username); default: the default org, or the only one'
            cand --color 'When to use colour'
            cand --store 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)'
            cand --timeout 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)'
            cand --wait 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)'
            cand --refresh 'Introspect the refresh token instead of the access token'
            cand --json 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
            cand -q 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand --quiet 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand -v 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand --verbose 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sfx;expires'= {
            cand --within 'Exit 3 if the token expires within this window (e.g. 10m; up to 366d)'
            cand --format 'Print just one value: human line, RFC 3339, Unix time, or seconds remaining'
            cand -o 'Which stored org (alias or username); default: the default org, or the only one'
            cand --org 'Which stored org (alias or username); default: the default org, or the only one'
            cand --color 'When to use colour'
            cand --store 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)'
            cand --timeout 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)'
            cand --wait 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)'
            cand --offline 'No network: JWT `exp`, then the cached introspection result, then the estimate'
            cand --all 'Answer for every stored org, one row each'
            cand --json 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
            cand -q 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand --quiet 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand -v 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand --verbose 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sfx;refresh'= {
            cand --if-expiring-within 'Refresh only if the best known expiry is within this window (or unknown); up to 366d'
            cand --format '`env` prints NAME=value lines (SFX_ACCESS_TOKEN, SFX_INSTANCE_URL, SF_ACCESS_TOKEN, SF_INSTANCE_URL, SF_TARGET_ORG, SF_ORG_INSTANCE_URL)'
            cand -o 'Which stored org (alias or username); default: the default org, or the only one'
            cand --org 'Which stored org (alias or username); default: the default org, or the only one'
            cand --color 'When to use colour'
            cand --store 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)'
            cand --timeout 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)'
            cand --wait 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)'
            cand --show-token 'Include the token values in `--json` output'
            cand --json 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
            cand -q 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand --quiet 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand -v 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand --verbose 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sfx;watch'= {
            cand --refresh-before 'Refresh when the access token expires within this window (up to 366d)'
            cand --keepalive 'Refresh an org whose refresh token has not been used for this long (from 1s to 366d)'
            cand --exec 'After each refresh, run this command through the shell'
            cand --listen 'Serve Prometheus metrics and health checks on this address'
            cand --exec-timeout 'Kill an --exec command (and every process it started) that runs longer than this'
            cand --min-check 'Shortest pause between two checks of one org (for tests; default 30s)'
            cand --max-check 'Longest pause between two checks of one org (for tests; default 15m)'
            cand -o 'Which stored org (alias or username); default: the default org, or the only one'
            cand --org 'Which stored org (alias or username); default: the default org, or the only one'
            cand --color 'When to use colour'
            cand --store 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)'
            cand --timeout 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)'
            cand --wait 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)'
            cand --all 'Watch every stored org, not only the selected one'
            cand --json 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
            cand -q 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand --quiet 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand -v 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand --verbose 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sfx;token'= {
            cand --min-valid 'Refresh first if the token has less than this left (up to 366d)'
            cand --format '`env` prints NAME=value lines (SFX_ACCESS_TOKEN, SFX_INSTANCE_URL, SF_…) instead of the bare token'
            cand -o 'Which stored org (alias or username); default: the default org, or the only one'
            cand --org 'Which stored org (alias or username); default: the default org, or the only one'
            cand --color 'When to use colour'
            cand --store 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)'
            cand --timeout 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)'
            cand --wait 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)'
            cand --auth-url 'Print the org''s SFDX auth URL (it holds the refresh token) instead, e.g. for a CI secret'
            cand --json 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
            cand -q 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand --quiet 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand -v 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand --verbose 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sfx;orgs'= {
            cand -o 'Which stored org (alias or username); default: the default org, or the only one'
            cand --org 'Which stored org (alias or username); default: the default org, or the only one'
            cand --color 'When to use colour'
            cand --store 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)'
            cand --timeout 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)'
            cand --wait 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)'
            cand --check 'Check each org''s token against Salesforce'
            cand --aliases 'Print only the stored aliases, one a line (for shell completion of `-o`)'
            cand --json 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
            cand -q 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand --quiet 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand -v 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand --verbose 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sfx;logout'= {
            cand -o 'Which stored org (alias or username); default: the default org, or the only one'
            cand --org 'Which stored org (alias or username); default: the default org, or the only one'
            cand --color 'When to use colour'
            cand --store 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)'
            cand --timeout 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)'
            cand --wait 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)'
            cand --revoke 'Revoke the refresh token (or the access token) at Salesforce first'
            cand --all 'Log out of every stored org'
            cand --json 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
            cand -q 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand --quiet 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand -v 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand --verbose 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sfx;completions'= {
            cand -o 'Which stored org (alias or username); default: the default org, or the only one'
            cand --org 'Which stored org (alias or username); default: the default org, or the only one'
            cand --color 'When to use colour'
            cand --store 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)'
            cand --timeout 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)'
            cand --wait 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)'
            cand --json 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
            cand -q 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand --quiet 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand -v 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand --verbose 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sfx;doctor'= {
            cand -o 'Which stored org (alias or username); default: the default org, or the only one'
            cand --org 'Which stored org (alias or username); default: the default org, or the only one'
            cand --color 'When to use colour'
            cand --store 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)'
            cand --timeout 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)'
            cand --wait 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)'
            cand --json 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
            cand -q 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand --quiet 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand -v 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand --verbose 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sfx;api'= {
            cand -X 'The HTTP method [default: GET, or POST with --data]'
            cand --method 'The HTTP method [default: GET, or POST with --data]'
            cand -H 'A request header, `Name: value`; repeat for more. Authorization is sfx''s own'
            cand --header 'A request header, `Name: value`; repeat for more. Authorization is sfx''s own'
            cand -d 'The request body: @FILE reads a file, - reads stdin, anything else is sent as is (at most 64 MiB)'
            cand --data 'The request body: @FILE reads a file, - reads stdin, anything else is sent as is (at most 64 MiB)'
            cand --min-valid 'Refresh first if the token has less than this left (up to 366d)'
            cand -o 'Which stored org (alias or username); default: the default org, or the only one'
            cand --org 'Which stored org (alias or username); default: the default org, or the only one'
            cand --color 'When to use colour'
            cand --store 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)'
            cand --timeout 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)'
            cand --wait 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)'
            cand -i 'Print the status line and the response headers before the body'
            cand --include 'Print the status line and the response headers before the body'
            cand --json 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
            cand -q 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand --quiet 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand -v 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand --verbose 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sfx;exec'= {
            cand --min-valid 'Refresh first if the token has less than this left (up to 366d)'
            cand -o 'Which stored org (alias or username); default: the default org, or the only one'
            cand --org 'Which stored org (alias or username); default: the default org, or the only one'
            cand --color 'When to use colour'
            cand --store 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)'
            cand --timeout 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)'
            cand --wait 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)'
            cand --json 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
            cand -q 'No effect on the command: sfx itself prints nothing on stdout here, and the command''s output is passed through'
            cand --quiet 'No effect on the command: sfx itself prints nothing on stdout here, and the command''s output is passed through'
            cand -v 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand --verbose 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sfx;store'= {
            cand -o 'Which stored org (alias or username); default: the default org, or the only one'
            cand --org 'Which stored org (alias or username); default: the default org, or the only one'
            cand --color 'When to use colour'
            cand --store 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)'
            cand --timeout 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)'
            cand --wait 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)'
            cand --json 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
            cand -q 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand --quiet 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand -v 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand --verbose 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand reader-key 'Print the reader key of the refresher key in SFX_STORE_KEY'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'sfx;store;reader-key'= {
            cand -o 'Which stored org (alias or username); default: the default org, or the only one'
            cand --org 'Which stored org (alias or username); default: the default org, or the only one'
            cand --color 'When to use colour'
            cand --store 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)'
            cand --timeout 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)'
            cand --wait 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)'
            cand --json 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
            cand -q 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand --quiet 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
            cand -v 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand --verbose 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'sfx;store;help'= {
            cand reader-key 'Print the reader key of the refresher key in SFX_STORE_KEY'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'sfx;store;help;reader-key'= {
        }
        &'sfx;store;help;help'= {
        }
        &'sfx;help'= {
            cand login 'Log in to an org and store it'
            cand introspect 'Ask the org''s introspection endpoint about the access (or refresh) token'
            cand expires 'When does the access token expire, and how sure is that answer?'
            cand refresh 'Get a new access token and store it'
            cand watch 'Stay running: refresh tokens ahead of expiry, keep refresh tokens alive'
            cand token 'Print a valid access token, refreshing first only if needed'
            cand orgs 'List stored orgs (no network, no keychain)'
            cand logout 'Remove an org''s stored credentials'
            cand completions 'Print a shell completion script'
            cand doctor 'Show where credentials are kept and whether the OS keychain works'
            cand api 'Call the org''s REST API with a valid token: refresh first if needed, and once more on a 401'
            cand exec 'Run a command with a valid token in its environment, never on its command line'
            cand store 'Keys of the shared store'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'sfx;help;login'= {
        }
        &'sfx;help;introspect'= {
        }
        &'sfx;help;expires'= {
        }
        &'sfx;help;refresh'= {
        }
        &'sfx;help;watch'= {
        }
        &'sfx;help;token'= {
        }
        &'sfx;help;orgs'= {
        }
        &'sfx;help;logout'= {
        }
        &'sfx;help;completions'= {
        }
        &'sfx;help;doctor'= {
        }
        &'sfx;help;api'= {
        }
        &'sfx;help;exec'= {
        }
        &'sfx;help;store'= {
            cand reader-key 'Print the reader key of the refresher key in SFX_STORE_KEY'
        }
        &'sfx;help;store;reader-key'= {
        }
        &'sfx;help;help'= {
        }
    ]
    $completions[$command]
}
