# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_sfx_global_optspecs
    string join \n o/org= json q/quiet v/verbose color= store= timeout= wait= h/help V/version
end

function __fish_sfx_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_sfx_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_sfx_using_subcommand
    set -l cmd (__fish_sfx_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c sfx -n "__fish_sfx_needs_command" -s o -l org -d 'Which stored org (alias or username); default: the default org, or the only one' -r -f -a "(sfx orgs --aliases --store local 2>/dev/null)"
complete -c sfx -n "__fish_sfx_needs_command" -l color -d 'When to use colour' -r -f -a "auto\t''
always\t''
never\t''"
complete -c sfx -n "__fish_sfx_needs_command" -l store -d 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)' -r
complete -c sfx -n "__fish_sfx_needs_command" -l timeout -d 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)' -r
complete -c sfx -n "__fish_sfx_needs_command" -l wait -d 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)' -r
complete -c sfx -n "__fish_sfx_needs_command" -l json -d 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
complete -c sfx -n "__fish_sfx_needs_command" -s q -l quiet -d 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
complete -c sfx -n "__fish_sfx_needs_command" -s v -l verbose -d 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
complete -c sfx -n "__fish_sfx_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sfx -n "__fish_sfx_needs_command" -s V -l version -d 'Print version'
complete -c sfx -n "__fish_sfx_needs_command" -f -a "login" -d 'Log in to an org and store it'
complete -c sfx -n "__fish_sfx_needs_command" -f -a "introspect" -d 'Ask the org\'s introspection endpoint about the access (or refresh) token'
complete -c sfx -n "__fish_sfx_needs_command" -f -a "expires" -d 'When does the access token expire, and how sure is that answer?'
complete -c sfx -n "__fish_sfx_needs_command" -f -a "refresh" -d 'Get a new access token and store it'
complete -c sfx -n "__fish_sfx_needs_command" -f -a "watch" -d 'Stay running: refresh tokens ahead of expiry, keep refresh tokens alive'
complete -c sfx -n "__fish_sfx_needs_command" -f -a "token" -d 'Print a valid access token, refreshing first only if needed'
complete -c sfx -n "__fish_sfx_needs_command" -f -a "orgs" -d 'List stored orgs (no network, no keychain)'
complete -c sfx -n "__fish_sfx_needs_command" -f -a "logout" -d 'Remove an org\'s stored credentials'
complete -c sfx -n "__fish_sfx_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c sfx -n "__fish_sfx_needs_command" -f -a "doctor" -d 'Show where credentials are kept and whether the OS keychain works'
complete -c sfx -n "__fish_sfx_needs_command" -f -a "api" -d 'Call the org\'s REST API with a valid token: refresh first if needed, and once more on a 401'
complete -c sfx -n "__fish_sfx_needs_command" -f -a "exec" -d 'Run a command with a valid token in its environment, never on its command line'
complete -c sfx -n "__fish_sfx_needs_command" -f -a "store" -d 'Keys of the shared store'
complete -c sfx -n "__fish_sfx_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sfx -n "__fish_sfx_using_subcommand login" -l auth-url -d 'Import an SFDX auth URL; `-` reads it from stdin' -r
complete -c sfx -n "__fish_sfx_using_subcommand login" -l refresh-token -d 'Import a refresh token read from stdin (give `-`); needs --client-id and --instance-url' -r
complete -c sfx -n "__fish_sfx_using_subcommand login" -l access-token -d 'Import an access token read from stdin (give `-`); needs --instance-url. It cannot be refreshed' -r
complete -c sfx -n "__fish_sfx_using_subcommand login" -l from-sf -d 'Take an org the Salesforce CLI (`sf`) is logged in to: no new login, no approval slot' -r
complete -c sfx -n "__fish_sfx_using_subcommand login" -l client-id -d 'The connected app\'s consumer key (client id)' -r
complete -c sfx -n "__fish_sfx_using_subcommand login" -l username -d 'The Salesforce username (--jwt, --password; a login hint for --web)' -r
complete -c sfx -n "__fish_sfx_using_subcommand login" -l key-file -d 'The RSA private key (PEM, PKCS#1 or PKCS#8) whose certificate is uploaded to the app (--jwt)' -r -F
complete -c sfx -n "__fish_sfx_using_subcommand login" -l port -d 'The local port for the browser\'s callback `http://localhost:<PORT>/OauthRedirect` (--web; 0 = any free port)' -r
complete -c sfx -n "__fish_sfx_using_subcommand login" -l login-timeout -d 'How long to wait for the browser (--web, default 2m) or the device approval (--device, default: until the code expires); from 1s to 1h' -r
complete -c sfx -n "__fish_sfx_using_subcommand login" -l scope -d 'OAuth scopes to ask for, space-separated (--web, --device) [default: the app\'s own scopes]' -r
complete -c sfx -n "__fish_sfx_using_subcommand login" -l instance-url -d 'The org\'s instance URL (its My Domain), e.g. https://acme.my.salesforce.com' -r
complete -c sfx -n "__fish_sfx_using_subcommand login" -l login-url -d 'Where to log in [default: https://login.salesforce.com]' -r
complete -c sfx -n "__fish_sfx_using_subcommand login" -s a -l alias -d 'A short name for this org [default: the username]' -r
complete -c sfx -n "__fish_sfx_using_subcommand login" -l session-timeout -d 'The org\'s session timeout, used to estimate expiry when introspection can\'t answer (from 1m to 366d)' -r
complete -c sfx -n "__fish_sfx_using_subcommand login" -l to -d 'With --migrate: move the org between this machine\'s local store and the shared store named by --store / SFX_STORE, with no new login' -r -f -a "local\t'This machine\'s store (keychain or secrets file)'
shared\t'The shared store named by --store / SFX_STORE'"
complete -c sfx -n "__fish_sfx_using_subcommand login" -s o -l org -d 'Which stored org (alias or username); default: the default org, or the only one' -r -f -a "(sfx orgs --aliases --store local 2>/dev/null)"
complete -c sfx -n "__fish_sfx_using_subcommand login" -l color -d 'When to use colour' -r -f -a "auto\t''
always\t''
never\t''"
complete -c sfx -n "__fish_sfx_using_subcommand login" -l store -d 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)' -r
complete -c sfx -n "__fish_sfx_using_subcommand login" -l timeout -d 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand login" -l wait -d 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand login" -l web -d 'Browser login: authorization code with PKCE (the default on a terminal)'
complete -c sfx -n "__fish_sfx_using_subcommand login" -l device -d 'Device login: prints a code and a URL to enter it at, then waits for approval'
complete -c sfx -n "__fish_sfx_using_subcommand login" -l jwt -d 'JWT bearer login (unattended): needs --client-id, --username and --key-file'
complete -c sfx -n "__fish_sfx_using_subcommand login" -l client-credentials -d 'Client credentials login (unattended): needs --client-id, the secret, and the My Domain URL'
complete -c sfx -n "__fish_sfx_using_subcommand login" -l password -d 'Username-password login (legacy): needs --client-id, the secret and --username'
complete -c sfx -n "__fish_sfx_using_subcommand login" -l no-browser -d 'Print the login URL on stderr instead of opening a browser (--web)'
complete -c sfx -n "__fish_sfx_using_subcommand login" -l client-secret-stdin -d 'Read the client secret from stdin (otherwise `SFX_CLIENT_SECRET`, or a prompt on a terminal)'
complete -c sfx -n "__fish_sfx_using_subcommand login" -l sandbox -d 'Log in at https://test.salesforce.com (sandboxes)'
complete -c sfx -n "__fish_sfx_using_subcommand login" -l set-default -d 'Make this the default org; with -o ORG and no login flow, mark that stored org as the default (no request, no new login)'
complete -c sfx -n "__fish_sfx_using_subcommand login" -l insecure-storage -d 'Keep secrets in a 0600 file beside the metadata instead of the OS keychain'
complete -c sfx -n "__fish_sfx_using_subcommand login" -l show-token -d 'Include the token values in `--json` output'
complete -c sfx -n "__fish_sfx_using_subcommand login" -l migrate -d 'Move an existing org\'s secrets into the OS keychain (or, with --insecure-storage, into the file) without logging in again; the old copies are deleted'
complete -c sfx -n "__fish_sfx_using_subcommand login" -l json -d 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
complete -c sfx -n "__fish_sfx_using_subcommand login" -s q -l quiet -d 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
complete -c sfx -n "__fish_sfx_using_subcommand login" -s v -l verbose -d 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
complete -c sfx -n "__fish_sfx_using_subcommand login" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sfx -n "__fish_sfx_using_subcommand login" -s V -l version -d 'Print version'
complete -c sfx -n "__fish_sfx_using_subcommand introspect" -s o -l org -d 'Which stored org (alias or username); default: the default org, or the only one' -r -f -a "(sfx orgs --aliases --store local 2>/dev/null)"
complete -c sfx -n "__fish_sfx_using_subcommand introspect" -l color -d 'When to use colour' -r -f -a "auto\t''
always\t''
never\t''"
complete -c sfx -n "__fish_sfx_using_subcommand introspect" -l store -d 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)' -r
complete -c sfx -n "__fish_sfx_using_subcommand introspect" -l timeout -d 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand introspect" -l wait -d 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand introspect" -l refresh -d 'Introspect the refresh token instead of the access token'
complete -c sfx -n "__fish_sfx_using_subcommand introspect" -l json -d 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
complete -c sfx -n "__fish_sfx_using_subcommand introspect" -s q -l quiet -d 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
complete -c sfx -n "__fish_sfx_using_subcommand introspect" -s v -l verbose -d 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
complete -c sfx -n "__fish_sfx_using_subcommand introspect" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sfx -n "__fish_sfx_using_subcommand introspect" -s V -l version -d 'Print version'
complete -c sfx -n "__fish_sfx_using_subcommand expires" -l within -d 'Exit 3 if the token expires within this window (e.g. 10m; up to 366d)' -r
complete -c sfx -n "__fish_sfx_using_subcommand expires" -l format -d 'Print just one value: human line, RFC 3339, Unix time, or seconds remaining' -r -f -a "human\t''
iso\t''
unix\t''
seconds\t''"
complete -c sfx -n "__fish_sfx_using_subcommand expires" -s o -l org -d 'Which stored org (alias or username); default: the default org, or the only one' -r -f -a "(sfx orgs --aliases --store local 2>/dev/null)"
complete -c sfx -n "__fish_sfx_using_subcommand expires" -l color -d 'When to use colour' -r -f -a "auto\t''
always\t''
never\t''"
complete -c sfx -n "__fish_sfx_using_subcommand expires" -l store -d 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)' -r
complete -c sfx -n "__fish_sfx_using_subcommand expires" -l timeout -d 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand expires" -l wait -d 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand expires" -l offline -d 'No network: JWT `exp`, then the cached introspection result, then the estimate'
complete -c sfx -n "__fish_sfx_using_subcommand expires" -l all -d 'Answer for every stored org, one row each'
complete -c sfx -n "__fish_sfx_using_subcommand expires" -l json -d 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
complete -c sfx -n "__fish_sfx_using_subcommand expires" -s q -l quiet -d 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
complete -c sfx -n "__fish_sfx_using_subcommand expires" -s v -l verbose -d 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
complete -c sfx -n "__fish_sfx_using_subcommand expires" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sfx -n "__fish_sfx_using_subcommand expires" -s V -l version -d 'Print version'
complete -c sfx -n "__fish_sfx_using_subcommand refresh" -l if-expiring-within -d 'Refresh only if the best known expiry is within this window (or unknown); up to 366d' -r
complete -c sfx -n "__fish_sfx_using_subcommand refresh" -l format -d '`env` prints NAME=value lines (SFX_ACCESS_TOKEN, SFX_INSTANCE_URL, SF_ACCESS_TOKEN, SF_INSTANCE_URL, SF_TARGET_ORG, SF_ORG_INSTANCE_URL)' -r -f -a "human\t''
env\t''"
complete -c sfx -n "__fish_sfx_using_subcommand refresh" -s o -l org -d 'Which stored org (alias or username); default: the default org, or the only one' -r -f -a "(sfx orgs --aliases --store local 2>/dev/null)"
complete -c sfx -n "__fish_sfx_using_subcommand refresh" -l color -d 'When to use colour' -r -f -a "auto\t''
always\t''
never\t''"
complete -c sfx -n "__fish_sfx_using_subcommand refresh" -l store -d 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)' -r
complete -c sfx -n "__fish_sfx_using_subcommand refresh" -l timeout -d 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand refresh" -l wait -d 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand refresh" -l show-token -d 'Include the token values in `--json` output'
complete -c sfx -n "__fish_sfx_using_subcommand refresh" -l json -d 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
complete -c sfx -n "__fish_sfx_using_subcommand refresh" -s q -l quiet -d 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
complete -c sfx -n "__fish_sfx_using_subcommand refresh" -s v -l verbose -d 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
complete -c sfx -n "__fish_sfx_using_subcommand refresh" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sfx -n "__fish_sfx_using_subcommand refresh" -s V -l version -d 'Print version'
complete -c sfx -n "__fish_sfx_using_subcommand watch" -l refresh-before -d 'Refresh when the access token expires within this window (up to 366d)' -r
complete -c sfx -n "__fish_sfx_using_subcommand watch" -l keepalive -d 'Refresh an org whose refresh token has not been used for this long (from 1s to 366d)' -r
complete -c sfx -n "__fish_sfx_using_subcommand watch" -l exec -d 'After each refresh, run this command through the shell' -r
complete -c sfx -n "__fish_sfx_using_subcommand watch" -l listen -d 'Serve Prometheus metrics and health checks on this address' -r
complete -c sfx -n "__fish_sfx_using_subcommand watch" -l exec-timeout -d 'Kill an --exec command (and every process it started) that runs longer than this' -r
complete -c sfx -n "__fish_sfx_using_subcommand watch" -l min-check -d 'Shortest pause between two checks of one org (for tests; default 30s)' -r
complete -c sfx -n "__fish_sfx_using_subcommand watch" -l max-check -d 'Longest pause between two checks of one org (for tests; default 15m)' -r
complete -c sfx -n "__fish_sfx_using_subcommand watch" -s o -l org -d 'Which stored org (alias or username); default: the default org, or the only one' -r -f -a "(sfx orgs --aliases --store local 2>/dev/null)"
complete -c sfx -n "__fish_sfx_using_subcommand watch" -l color -d 'When to use colour' -r -f -a "auto\t''
always\t''
never\t''"
complete -c sfx -n "__fish_sfx_using_subcommand watch" -l store -d 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)' -r
complete -c sfx -n "__fish_sfx_using_subcommand watch" -l timeout -d 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand watch" -l wait -d 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand watch" -l all -d 'Watch every stored org, not only the selected one'
complete -c sfx -n "__fish_sfx_using_subcommand watch" -l json -d 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
complete -c sfx -n "__fish_sfx_using_subcommand watch" -s q -l quiet -d 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
complete -c sfx -n "__fish_sfx_using_subcommand watch" -s v -l verbose -d 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
complete -c sfx -n "__fish_sfx_using_subcommand watch" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sfx -n "__fish_sfx_using_subcommand watch" -s V -l version -d 'Print version'
complete -c sfx -n "__fish_sfx_using_subcommand token" -l min-valid -d 'Refresh first if the token has less than this left (up to 366d)' -r
complete -c sfx -n "__fish_sfx_using_subcommand token" -l format -d '`env` prints NAME=value lines (SFX_ACCESS_TOKEN, SFX_INSTANCE_URL, SF_…) instead of the bare token' -r -f -a "human\t''
env\t''"
complete -c sfx -n "__fish_sfx_using_subcommand token" -s o -l org -d 'Which stored org (alias or username); default: the default org, or the only one' -r -f -a "(sfx orgs --aliases --store local 2>/dev/null)"
complete -c sfx -n "__fish_sfx_using_subcommand token" -l color -d 'When to use colour' -r -f -a "auto\t''
always\t''
never\t''"
complete -c sfx -n "__fish_sfx_using_subcommand token" -l store -d 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)' -r
complete -c sfx -n "__fish_sfx_using_subcommand token" -l timeout -d 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand token" -l wait -d 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand token" -l auth-url -d 'Print the org\'s SFDX auth URL (it holds the refresh token) instead, e.g. for a CI secret'
complete -c sfx -n "__fish_sfx_using_subcommand token" -l json -d 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
complete -c sfx -n "__fish_sfx_using_subcommand token" -s q -l quiet -d 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
complete -c sfx -n "__fish_sfx_using_subcommand token" -s v -l verbose -d 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
complete -c sfx -n "__fish_sfx_using_subcommand token" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sfx -n "__fish_sfx_using_subcommand token" -s V -l version -d 'Print version'
complete -c sfx -n "__fish_sfx_using_subcommand orgs" -s o -l org -d 'Which stored org (alias or username); default: the default org, or the only one' -r -f -a "(sfx orgs --aliases --store local 2>/dev/null)"
complete -c sfx -n "__fish_sfx_using_subcommand orgs" -l color -d 'When to use colour' -r -f -a "auto\t''
always\t''
never\t''"
complete -c sfx -n "__fish_sfx_using_subcommand orgs" -l store -d 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)' -r
complete -c sfx -n "__fish_sfx_using_subcommand orgs" -l timeout -d 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand orgs" -l wait -d 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand orgs" -l check -d 'Check each org\'s token against Salesforce'
complete -c sfx -n "__fish_sfx_using_subcommand orgs" -l aliases -d 'Print only the stored aliases, one a line (for shell completion of `-o`)'
complete -c sfx -n "__fish_sfx_using_subcommand orgs" -l json -d 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
complete -c sfx -n "__fish_sfx_using_subcommand orgs" -s q -l quiet -d 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
complete -c sfx -n "__fish_sfx_using_subcommand orgs" -s v -l verbose -d 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
complete -c sfx -n "__fish_sfx_using_subcommand orgs" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sfx -n "__fish_sfx_using_subcommand orgs" -s V -l version -d 'Print version'
complete -c sfx -n "__fish_sfx_using_subcommand logout" -s o -l org -d 'Which stored org (alias or username); default: the default org, or the only one' -r -f -a "(sfx orgs --aliases --store local 2>/dev/null)"
complete -c sfx -n "__fish_sfx_using_subcommand logout" -l color -d 'When to use colour' -r -f -a "auto\t''
always\t''
never\t''"
complete -c sfx -n "__fish_sfx_using_subcommand logout" -l store -d 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)' -r
complete -c sfx -n "__fish_sfx_using_subcommand logout" -l timeout -d 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand logout" -l wait -d 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand logout" -l revoke -d 'Revoke the refresh token (or the access token) at Salesforce first'
complete -c sfx -n "__fish_sfx_using_subcommand logout" -l all -d 'Log out of every stored org'
complete -c sfx -n "__fish_sfx_using_subcommand logout" -l json -d 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
complete -c sfx -n "__fish_sfx_using_subcommand logout" -s q -l quiet -d 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
complete -c sfx -n "__fish_sfx_using_subcommand logout" -s v -l verbose -d 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
complete -c sfx -n "__fish_sfx_using_subcommand logout" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sfx -n "__fish_sfx_using_subcommand logout" -s V -l version -d 'Print version'
complete -c sfx -n "__fish_sfx_using_subcommand completions" -s o -l org -d 'Which stored org (alias or username); default: the default org, or the only one' -r -f -a "(sfx orgs --aliases --store local 2>/dev/null)"
complete -c sfx -n "__fish_sfx_using_subcommand completions" -l color -d 'When to use colour' -r -f -a "auto\t''
always\t''
never\t''"
complete -c sfx -n "__fish_sfx_using_subcommand completions" -l store -d 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)' -r
complete -c sfx -n "__fish_sfx_using_subcommand completions" -l timeout -d 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand completions" -l wait -d 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand completions" -l json -d 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
complete -c sfx -n "__fish_sfx_using_subcommand completions" -s q -l quiet -d 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
complete -c sfx -n "__fish_sfx_using_subcommand completions" -s v -l verbose -d 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
complete -c sfx -n "__fish_sfx_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sfx -n "__fish_sfx_using_subcommand completions" -s V -l version -d 'Print version'
complete -c sfx -n "__fish_sfx_using_subcommand doctor" -s o -l org -d 'Which stored org (alias or username); default: the default org, or the only one' -r -f -a "(sfx orgs --aliases --store local 2>/dev/null)"
complete -c sfx -n "__fish_sfx_using_subcommand doctor" -l color -d 'When to use colour' -r -f -a "auto\t''
always\t''
never\t''"
complete -c sfx -n "__fish_sfx_using_subcommand doctor" -l store -d 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)' -r
complete -c sfx -n "__fish_sfx_using_subcommand doctor" -l timeout -d 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand doctor" -l wait -d 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand doctor" -l json -d 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
complete -c sfx -n "__fish_sfx_using_subcommand doctor" -s q -l quiet -d 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
complete -c sfx -n "__fish_sfx_using_subcommand doctor" -s v -l verbose -d 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
complete -c sfx -n "__fish_sfx_using_subcommand doctor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sfx -n "__fish_sfx_using_subcommand doctor" -s V -l version -d 'Print version'
complete -c sfx -n "__fish_sfx_using_subcommand api" -s X -l method -d 'The HTTP method [default: GET, or POST with --data]' -r
complete -c sfx -n "__fish_sfx_using_subcommand api" -s H -l header -d 'A request header, `Name: value`; repeat for more. Authorization is sfx\'s own' -r
complete -c sfx -n "__fish_sfx_using_subcommand api" -s d -l data -d 'The request body: @FILE reads a file, - reads stdin, anything else is sent as is (at most 64 MiB)' -r
complete -c sfx -n "__fish_sfx_using_subcommand api" -l min-valid -d 'Refresh first if the token has less than this left (up to 366d)' -r
complete -c sfx -n "__fish_sfx_using_subcommand api" -s o -l org -d 'Which stored org (alias or username); default: the default org, or the only one' -r -f -a "(sfx orgs --aliases --store local 2>/dev/null)"
complete -c sfx -n "__fish_sfx_using_subcommand api" -l color -d 'When to use colour' -r -f -a "auto\t''
always\t''
never\t''"
complete -c sfx -n "__fish_sfx_using_subcommand api" -l store -d 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)' -r
complete -c sfx -n "__fish_sfx_using_subcommand api" -l timeout -d 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand api" -l wait -d 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand api" -s i -l include -d 'Print the status line and the response headers before the body'
complete -c sfx -n "__fish_sfx_using_subcommand api" -l json -d 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
complete -c sfx -n "__fish_sfx_using_subcommand api" -s q -l quiet -d 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
complete -c sfx -n "__fish_sfx_using_subcommand api" -s v -l verbose -d 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
complete -c sfx -n "__fish_sfx_using_subcommand api" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sfx -n "__fish_sfx_using_subcommand api" -s V -l version -d 'Print version'
complete -c sfx -n "__fish_sfx_using_subcommand exec" -l min-valid -d 'Refresh first if the token has less than this left (up to 366d)' -r
complete -c sfx -n "__fish_sfx_using_subcommand exec" -s o -l org -d 'Which stored org (alias or username); default: the default org, or the only one' -r -f -a "(sfx orgs --aliases --store local 2>/dev/null)"
complete -c sfx -n "__fish_sfx_using_subcommand exec" -l color -d 'When to use colour' -r -f -a "auto\t''
always\t''
never\t''"
complete -c sfx -n "__fish_sfx_using_subcommand exec" -l store -d 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)' -r
complete -c sfx -n "__fish_sfx_using_subcommand exec" -l timeout -d 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand exec" -l wait -d 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand exec" -l json -d 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
complete -c sfx -n "__fish_sfx_using_subcommand exec" -s q -l quiet -d 'No effect on the command: sfx itself prints nothing on stdout here, and the command\'s output is passed through'
complete -c sfx -n "__fish_sfx_using_subcommand exec" -s v -l verbose -d 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
complete -c sfx -n "__fish_sfx_using_subcommand exec" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sfx -n "__fish_sfx_using_subcommand exec" -s V -l version -d 'Print version'
complete -c sfx -n "__fish_sfx_using_subcommand store; and not __fish_seen_subcommand_from reader-key help" -s o -l org -d 'Which stored org (alias or username); default: the default org, or the only one' -r -f -a "(sfx orgs --aliases --store local 2>/dev/null)"
complete -c sfx -n "__fish_sfx_using_subcommand store; and not __fish_seen_subcommand_from reader-key help" -l color -d 'When to use colour' -r -f -a "auto\t''
always\t''
never\t''"
complete -c sfx -n "__fish_sfx_using_subcommand store; and not __fish_seen_subcommand_from reader-key help" -l store -d 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)' -r
complete -c sfx -n "__fish_sfx_using_subcommand store; and not __fish_seen_subcommand_from reader-key help" -l timeout -d 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand store; and not __fish_seen_subcommand_from reader-key help" -l wait -d 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand store; and not __fish_seen_subcommand_from reader-key help" -l json -d 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
complete -c sfx -n "__fish_sfx_using_subcommand store; and not __fish_seen_subcommand_from reader-key help" -s q -l quiet -d 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
complete -c sfx -n "__fish_sfx_using_subcommand store; and not __fish_seen_subcommand_from reader-key help" -s v -l verbose -d 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
complete -c sfx -n "__fish_sfx_using_subcommand store; and not __fish_seen_subcommand_from reader-key help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sfx -n "__fish_sfx_using_subcommand store; and not __fish_seen_subcommand_from reader-key help" -s V -l version -d 'Print version'
complete -c sfx -n "__fish_sfx_using_subcommand store; and not __fish_seen_subcommand_from reader-key help" -f -a "reader-key" -d 'Print the reader key of the refresher key in SFX_STORE_KEY'
complete -c sfx -n "__fish_sfx_using_subcommand store; and not __fish_seen_subcommand_from reader-key help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sfx -n "__fish_sfx_using_subcommand store; and __fish_seen_subcommand_from reader-key" -s o -l org -d 'Which stored org (alias or username); default: the default org, or the only one' -r -f -a "(sfx orgs --aliases --store local 2>/dev/null)"
complete -c sfx -n "__fish_sfx_using_subcommand store; and __fish_seen_subcommand_from reader-key" -l color -d 'When to use colour' -r -f -a "auto\t''
always\t''
never\t''"
complete -c sfx -n "__fish_sfx_using_subcommand store; and __fish_seen_subcommand_from reader-key" -l store -d 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)' -r
complete -c sfx -n "__fish_sfx_using_subcommand store; and __fish_seen_subcommand_from reader-key" -l timeout -d 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand store; and __fish_seen_subcommand_from reader-key" -l wait -d 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)' -r
complete -c sfx -n "__fish_sfx_using_subcommand store; and __fish_seen_subcommand_from reader-key" -l json -d 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else'
complete -c sfx -n "__fish_sfx_using_subcommand store; and __fish_seen_subcommand_from reader-key" -s q -l quiet -d 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)'
complete -c sfx -n "__fish_sfx_using_subcommand store; and __fish_seen_subcommand_from reader-key" -s v -l verbose -d 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies'
complete -c sfx -n "__fish_sfx_using_subcommand store; and __fish_seen_subcommand_from reader-key" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sfx -n "__fish_sfx_using_subcommand store; and __fish_seen_subcommand_from reader-key" -s V -l version -d 'Print version'
complete -c sfx -n "__fish_sfx_using_subcommand store; and __fish_seen_subcommand_from help" -f -a "reader-key" -d 'Print the reader key of the refresher key in SFX_STORE_KEY'
complete -c sfx -n "__fish_sfx_using_subcommand store; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sfx -n "__fish_sfx_using_subcommand help; and not __fish_seen_subcommand_from login introspect expires refresh watch token orgs logout completions doctor api exec store help" -f -a "login" -d 'Log in to an org and store it'
complete -c sfx -n "__fish_sfx_using_subcommand help; and not __fish_seen_subcommand_from login introspect expires refresh watch token orgs logout completions doctor api exec store help" -f -a "introspect" -d 'Ask the org\'s introspection endpoint about the access (or refresh) token'
complete -c sfx -n "__fish_sfx_using_subcommand help; and not __fish_seen_subcommand_from login introspect expires refresh watch token orgs logout completions doctor api exec store help" -f -a "expires" -d 'When does the access token expire, and how sure is that answer?'
complete -c sfx -n "__fish_sfx_using_subcommand help; and not __fish_seen_subcommand_from login introspect expires refresh watch token orgs logout completions doctor api exec store help" -f -a "refresh" -d 'Get a new access token and store it'
complete -c sfx -n "__fish_sfx_using_subcommand help; and not __fish_seen_subcommand_from login introspect expires refresh watch token orgs logout completions doctor api exec store help" -f -a "watch" -d 'Stay running: refresh tokens ahead of expiry, keep refresh tokens alive'
complete -c sfx -n "__fish_sfx_using_subcommand help; and not __fish_seen_subcommand_from login introspect expires refresh watch token orgs logout completions doctor api exec store help" -f -a "token" -d 'Print a valid access token, refreshing first only if needed'
complete -c sfx -n "__fish_sfx_using_subcommand help; and not __fish_seen_subcommand_from login introspect expires refresh watch token orgs logout completions doctor api exec store help" -f -a "orgs" -d 'List stored orgs (no network, no keychain)'
complete -c sfx -n "__fish_sfx_using_subcommand help; and not __fish_seen_subcommand_from login introspect expires refresh watch token orgs logout completions doctor api exec store help" -f -a "logout" -d 'Remove an org\'s stored credentials'
complete -c sfx -n "__fish_sfx_using_subcommand help; and not __fish_seen_subcommand_from login introspect expires refresh watch token orgs logout completions doctor api exec store help" -f -a "completions" -d 'Print a shell completion script'
complete -c sfx -n "__fish_sfx_using_subcommand help; and not __fish_seen_subcommand_from login introspect expires refresh watch token orgs logout completions doctor api exec store help" -f -a "doctor" -d 'Show where credentials are kept and whether the OS keychain works'
complete -c sfx -n "__fish_sfx_using_subcommand help; and not __fish_seen_subcommand_from login introspect expires refresh watch token orgs logout completions doctor api exec store help" -f -a "api" -d 'Call the org\'s REST API with a valid token: refresh first if needed, and once more on a 401'
complete -c sfx -n "__fish_sfx_using_subcommand help; and not __fish_seen_subcommand_from login introspect expires refresh watch token orgs logout completions doctor api exec store help" -f -a "exec" -d 'Run a command with a valid token in its environment, never on its command line'
complete -c sfx -n "__fish_sfx_using_subcommand help; and not __fish_seen_subcommand_from login introspect expires refresh watch token orgs logout completions doctor api exec store help" -f -a "store" -d 'Keys of the shared store'
complete -c sfx -n "__fish_sfx_using_subcommand help; and not __fish_seen_subcommand_from login introspect expires refresh watch token orgs logout completions doctor api exec store help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sfx -n "__fish_sfx_using_subcommand help; and __fish_seen_subcommand_from store" -f -a "reader-key" -d 'Print the reader key of the refresher key in SFX_STORE_KEY'
