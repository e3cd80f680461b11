
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'sfx' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'sfx'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'sfx' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--org', '--org', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('login', 'login', [CompletionResultType]::ParameterValue, 'Log in to an org and store it')
            [CompletionResult]::new('introspect', 'introspect', [CompletionResultType]::ParameterValue, 'Ask the org''s introspection endpoint about the access (or refresh) token')
            [CompletionResult]::new('expires', 'expires', [CompletionResultType]::ParameterValue, 'When does the access token expire, and how sure is that answer?')
            [CompletionResult]::new('refresh', 'refresh', [CompletionResultType]::ParameterValue, 'Get a new access token and store it')
            [CompletionResult]::new('watch', 'watch', [CompletionResultType]::ParameterValue, 'Stay running: refresh tokens ahead of expiry, keep refresh tokens alive')
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Print a valid access token, refreshing first only if needed')
            [CompletionResult]::new('orgs', 'orgs', [CompletionResultType]::ParameterValue, 'List stored orgs (no network, no keychain)')
            [CompletionResult]::new('logout', 'logout', [CompletionResultType]::ParameterValue, 'Remove an org''s stored credentials')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Show where credentials are kept and whether the OS keychain works')
            [CompletionResult]::new('api', 'api', [CompletionResultType]::ParameterValue, 'Call the org''s REST API with a valid token: refresh first if needed, and once more on a 401')
            [CompletionResult]::new('exec', 'exec', [CompletionResultType]::ParameterValue, 'Run a command with a valid token in its environment, never on its command line')
            [CompletionResult]::new('store', 'store', [CompletionResultType]::ParameterValue, 'Keys of the shared store')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'sfx;login' {
            [CompletionResult]::new('--auth-url', '--auth-url', [CompletionResultType]::ParameterName, 'Import an SFDX auth URL; `-` reads it from stdin')
            [CompletionResult]::new('--refresh-token', '--refresh-token', [CompletionResultType]::ParameterName, 'Import a refresh token read from stdin (give `-`); needs --client-id and --instance-url')
            [CompletionResult]::new('--access-token', '--access-token', [CompletionResultType]::ParameterName, 'Import an access token read from stdin (give `-`); needs --instance-url. It cannot be refreshed')
            [CompletionResult]::new('--from-sf', '--from-sf', [CompletionResultType]::ParameterName, 'Take an org the Salesforce CLI (`sf`) is logged in to: no new login, no approval slot')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'The connected app''s consumer key (client id)')
            [CompletionResult]::new('--username', '--username', [CompletionResultType]::ParameterName, 'The Salesforce username (--jwt, --password; a login hint for --web)')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'The RSA private key (PEM, PKCS#1 or PKCS#8) whose certificate is uploaded to the app (--jwt)')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'The local port for the browser''s callback `http://localhost:<PORT>/OauthRedirect` (--web; 0 = any free port)')
            [CompletionResult]::new('--login-timeout', '--login-timeout', [CompletionResultType]::ParameterName, 'How long to wait for the browser (--web, default 2m) or the device approval (--device, default: until the code expires); from 1s to 1h')
            [CompletionResult]::new('--scope', '--scope', [CompletionResultType]::ParameterName, 'OAuth scopes to ask for, space-separated (--web, --device) [default: the app''s own scopes]')
            [CompletionResult]::new('--instance-url', '--instance-url', [CompletionResultType]::ParameterName, 'The org''s instance URL (its My Domain), e.g. https://acme.my.salesforce.com')
            [CompletionResult]::new('--login-url', '--login-url', [CompletionResultType]::ParameterName, 'Where to log in [default: https://login.salesforce.com]')
            [CompletionResult]::new('-a', '-a', [CompletionResultType]::ParameterName, 'A short name for this org [default: the username]')
            [CompletionResult]::new('--alias', '--alias', [CompletionResultType]::ParameterName, 'A short name for this org [default: the username]')
            [CompletionResult]::new('--session-timeout', '--session-timeout', [CompletionResultType]::ParameterName, 'The org''s session timeout, used to estimate expiry when introspection can''t answer (from 1m to 366d)')
            [CompletionResult]::new('--to', '--to', [CompletionResultType]::ParameterName, 'With --migrate: move the org between this machine''s local store and the shared store named by --store / SFX_STORE, with no new login')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--org', '--org', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)')
            [CompletionResult]::new('--web', '--web', [CompletionResultType]::ParameterName, 'Browser login: authorization code with PKCE (the default on a terminal)')
            [CompletionResult]::new('--device', '--device', [CompletionResultType]::ParameterName, 'Device login: prints a code and a URL to enter it at, then waits for approval')
            [CompletionResult]::new('--jwt', '--jwt', [CompletionResultType]::ParameterName, 'JWT bearer login (unattended): needs --client-id, --username and --key-file')
            [CompletionResult]::new('--client-credentials', '--client-credentials', [CompletionResultType]::ParameterName, 'Client credentials login (unattended): needs --client-id, the secret, and the My Domain URL')
            [CompletionResult]::new('--password', '--password', [CompletionResultType]::ParameterName, 'Username-password login (legacy): needs --client-id, the secret and --username')
            [CompletionResult]::new('--no-browser', '--no-browser', [CompletionResultType]::ParameterName, 'Print the login URL on stderr instead of opening a browser (--web)')
            [CompletionResult]::new('--client-secret-stdin', '--client-secret-stdin', [CompletionResultType]::ParameterName, 'Read the client secret from stdin (otherwise `SFX_CLIENT_SECRET`, or a prompt on a terminal)')
            [CompletionResult]::new('--sandbox', '--sandbox', [CompletionResultType]::ParameterName, 'Log in at https://test.salesforce.com (sandboxes)')
            [CompletionResult]::new('--set-default', '--set-default', [CompletionResultType]::ParameterName, 'Make this the default org; with -o ORG and no login flow, mark that stored org as the default (no request, no new login)')
            [CompletionResult]::new('--insecure-storage', '--insecure-storage', [CompletionResultType]::ParameterName, 'Keep secrets in a 0600 file beside the metadata instead of the OS keychain')
            [CompletionResult]::new('--show-token', '--show-token', [CompletionResultType]::ParameterName, 'Include the token values in `--json` output')
            [CompletionResult]::new('--migrate', '--migrate', [CompletionResultType]::ParameterName, 'Move an existing org''s secrets into the OS keychain (or, with --insecure-storage, into the file) without logging in again; the old copies are deleted')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sfx;introspect' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--org', '--org', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)')
            [CompletionResult]::new('--refresh', '--refresh', [CompletionResultType]::ParameterName, 'Introspect the refresh token instead of the access token')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sfx;expires' {
            [CompletionResult]::new('--within', '--within', [CompletionResultType]::ParameterName, 'Exit 3 if the token expires within this window (e.g. 10m; up to 366d)')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Print just one value: human line, RFC 3339, Unix time, or seconds remaining')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--org', '--org', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)')
            [CompletionResult]::new('--offline', '--offline', [CompletionResultType]::ParameterName, 'No network: JWT `exp`, then the cached introspection result, then the estimate')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Answer for every stored org, one row each')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sfx;refresh' {
            [CompletionResult]::new('--if-expiring-within', '--if-expiring-within', [CompletionResultType]::ParameterName, 'Refresh only if the best known expiry is within this window (or unknown); up to 366d')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, '`env` prints NAME=value lines (SFX_ACCESS_TOKEN, SFX_INSTANCE_URL, SF_ACCESS_TOKEN, SF_INSTANCE_URL, SF_TARGET_ORG, SF_ORG_INSTANCE_URL)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--org', '--org', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)')
            [CompletionResult]::new('--show-token', '--show-token', [CompletionResultType]::ParameterName, 'Include the token values in `--json` output')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sfx;watch' {
            [CompletionResult]::new('--refresh-before', '--refresh-before', [CompletionResultType]::ParameterName, 'Refresh when the access token expires within this window (up to 366d)')
            [CompletionResult]::new('--keepalive', '--keepalive', [CompletionResultType]::ParameterName, 'Refresh an org whose refresh token has not been used for this long (from 1s to 366d)')
            [CompletionResult]::new('--exec', '--exec', [CompletionResultType]::ParameterName, 'After each refresh, run this command through the shell')
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'Serve Prometheus metrics and health checks on this address')
            [CompletionResult]::new('--exec-timeout', '--exec-timeout', [CompletionResultType]::ParameterName, 'Kill an --exec command (and every process it started) that runs longer than this')
            [CompletionResult]::new('--min-check', '--min-check', [CompletionResultType]::ParameterName, 'Shortest pause between two checks of one org (for tests; default 30s)')
            [CompletionResult]::new('--max-check', '--max-check', [CompletionResultType]::ParameterName, 'Longest pause between two checks of one org (for tests; default 15m)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--org', '--org', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Watch every stored org, not only the selected one')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sfx;token' {
            [CompletionResult]::new('--min-valid', '--min-valid', [CompletionResultType]::ParameterName, 'Refresh first if the token has less than this left (up to 366d)')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, '`env` prints NAME=value lines (SFX_ACCESS_TOKEN, SFX_INSTANCE_URL, SF_…) instead of the bare token')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--org', '--org', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)')
            [CompletionResult]::new('--auth-url', '--auth-url', [CompletionResultType]::ParameterName, 'Print the org''s SFDX auth URL (it holds the refresh token) instead, e.g. for a CI secret')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sfx;orgs' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--org', '--org', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)')
            [CompletionResult]::new('--check', '--check', [CompletionResultType]::ParameterName, 'Check each org''s token against Salesforce')
            [CompletionResult]::new('--aliases', '--aliases', [CompletionResultType]::ParameterName, 'Print only the stored aliases, one a line (for shell completion of `-o`)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sfx;logout' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--org', '--org', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)')
            [CompletionResult]::new('--revoke', '--revoke', [CompletionResultType]::ParameterName, 'Revoke the refresh token (or the access token) at Salesforce first')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Log out of every stored org')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sfx;completions' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--org', '--org', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sfx;doctor' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--org', '--org', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sfx;api' {
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'The HTTP method [default: GET, or POST with --data]')
            [CompletionResult]::new('--method', '--method', [CompletionResultType]::ParameterName, 'The HTTP method [default: GET, or POST with --data]')
            [CompletionResult]::new('-H', '-H ', [CompletionResultType]::ParameterName, 'A request header, `Name: value`; repeat for more. Authorization is sfx''s own')
            [CompletionResult]::new('--header', '--header', [CompletionResultType]::ParameterName, 'A request header, `Name: value`; repeat for more. Authorization is sfx''s own')
            [CompletionResult]::new('-d', '-d', [CompletionResultType]::ParameterName, 'The request body: @FILE reads a file, - reads stdin, anything else is sent as is (at most 64 MiB)')
            [CompletionResult]::new('--data', '--data', [CompletionResultType]::ParameterName, 'The request body: @FILE reads a file, - reads stdin, anything else is sent as is (at most 64 MiB)')
            [CompletionResult]::new('--min-valid', '--min-valid', [CompletionResultType]::ParameterName, 'Refresh first if the token has less than this left (up to 366d)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--org', '--org', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)')
            [CompletionResult]::new('-i', '-i', [CompletionResultType]::ParameterName, 'Print the status line and the response headers before the body')
            [CompletionResult]::new('--include', '--include', [CompletionResultType]::ParameterName, 'Print the status line and the response headers before the body')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sfx;exec' {
            [CompletionResult]::new('--min-valid', '--min-valid', [CompletionResultType]::ParameterName, 'Refresh first if the token has less than this left (up to 366d)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--org', '--org', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No effect on the command: sfx itself prints nothing on stdout here, and the command''s output is passed through')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No effect on the command: sfx itself prints nothing on stdout here, and the command''s output is passed through')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sfx;store' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--org', '--org', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('reader-key', 'reader-key', [CompletionResultType]::ParameterValue, 'Print the reader key of the refresher key in SFX_STORE_KEY')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'sfx;store;reader-key' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--org', '--org', [CompletionResultType]::ParameterName, 'Which stored org (alias or username); default: the default org, or the only one')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'Where orgs live: `local` (default) or a shared Redis/Valkey store, redis://USER:PASSWORD@HOST:PORT/DB (user, password, port and db optional; rediss:// for TLS)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Timeout for each HTTP attempt and each shared-store call (e.g. 10s, 1m; from 100ms to 1h)')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'With a reader key: how long to wait for a refresher to store a fresher token (from 1s to 1h)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout (JSON Lines for `watch`), nothing else')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stdout: the exit code is the answer (errors still go to stderr)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Trace HTTP requests on stderr, every secret redacted; repeat for bodies')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'sfx;store;help' {
            [CompletionResult]::new('reader-key', 'reader-key', [CompletionResultType]::ParameterValue, 'Print the reader key of the refresher key in SFX_STORE_KEY')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'sfx;store;help;reader-key' {
            break
        }
        'sfx;store;help;help' {
            break
        }
        'sfx;help' {
            [CompletionResult]::new('login', 'login', [CompletionResultType]::ParameterValue, 'Log in to an org and store it')
            [CompletionResult]::new('introspect', 'introspect', [CompletionResultType]::ParameterValue, 'Ask the org''s introspection endpoint about the access (or refresh) token')
            [CompletionResult]::new('expires', 'expires', [CompletionResultType]::ParameterValue, 'When does the access token expire, and how sure is that answer?')
            [CompletionResult]::new('refresh', 'refresh', [CompletionResultType]::ParameterValue, 'Get a new access token and store it')
            [CompletionResult]::new('watch', 'watch', [CompletionResultType]::ParameterValue, 'Stay running: refresh tokens ahead of expiry, keep refresh tokens alive')
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Print a valid access token, refreshing first only if needed')
            [CompletionResult]::new('orgs', 'orgs', [CompletionResultType]::ParameterValue, 'List stored orgs (no network, no keychain)')
            [CompletionResult]::new('logout', 'logout', [CompletionResultType]::ParameterValue, 'Remove an org''s stored credentials')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Show where credentials are kept and whether the OS keychain works')
            [CompletionResult]::new('api', 'api', [CompletionResultType]::ParameterValue, 'Call the org''s REST API with a valid token: refresh first if needed, and once more on a 401')
            [CompletionResult]::new('exec', 'exec', [CompletionResultType]::ParameterValue, 'Run a command with a valid token in its environment, never on its command line')
            [CompletionResult]::new('store', 'store', [CompletionResultType]::ParameterValue, 'Keys of the shared store')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'sfx;help;login' {
            break
        }
        'sfx;help;introspect' {
            break
        }
        'sfx;help;expires' {
            break
        }
        'sfx;help;refresh' {
            break
        }
        'sfx;help;watch' {
            break
        }
        'sfx;help;token' {
            break
        }
        'sfx;help;orgs' {
            break
        }
        'sfx;help;logout' {
            break
        }
        'sfx;help;completions' {
            break
        }
        'sfx;help;doctor' {
            break
        }
        'sfx;help;api' {
            break
        }
        'sfx;help;exec' {
            break
        }
        'sfx;help;store' {
            [CompletionResult]::new('reader-key', 'reader-key', [CompletionResultType]::ParameterValue, 'Print the reader key of the refresher key in SFX_STORE_KEY')
            break
        }
        'sfx;help;store;reader-key' {
            break
        }
        'sfx;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
