"""Settings for the site: one module, grouped by concern, configured by the environment.

Every value a deployment may change is read through the typed helpers in app/env.py, which fail
with one line naming the variable. .env.example documents each variable.
"""

from pathlib import Path

from app import trial
from app.env import ConfigError, env_bool, env_int, env_list, env_str
from app.mail import env_addresses

BASE_DIR = Path(__file__).resolve().parent.parent  # /app in the image

# --- Core -------------------------------------------------------------------------------------
# DEBUG is off unless asked for: a forgotten variable must not expose tracebacks in production.
# (manage.py turns it on for `runserver` only, so a fresh clone runs with no configuration.)
DEBUG = env_bool("DEBUG", False)

# The trial setup (app/trial.py): no DB_NAME = a first look on this machine, with SQLite and a
# generated SECRET_KEY in DATA_DIR and localhost only. Production names its PostgreSQL database.
DB_NAME = env_str("DB_NAME", "")
TRIAL = not DB_NAME and not DEBUG
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "data")))
if not DB_NAME and env_bool("HTTPS", False):
    # HTTPS=true is a production site: a forgotten DB_NAME must not put it on the trial's SQLite.
    raise ConfigError(
        "HTTPS=true but DB_NAME is not set: a production site needs its PostgreSQL database "
        "(set DB_NAME, DB_USER and DB_HOST in .env; see .env.example)"
    )

if DEBUG:
    # A fixed, loudly named key keeps dev sessions alive across autoreloads; never used in production.
    SECRET_KEY = env_str("SECRET_KEY", "django-insecure-development-only-key")
elif TRIAL and not env_str("SECRET_KEY", ""):
    SECRET_KEY = trial.secret_key(DATA_DIR)  # generated once, kept in DATA_DIR: sessions survive
else:
    SECRET_KEY = env_str("SECRET_KEY")
    if len(SECRET_KEY) < 50:
        raise ConfigError("SECRET_KEY must be at least 50 characters (make env generates one)")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG or TRIAL else "")
if not DEBUG and not ALLOWED_HOSTS:
    raise ConfigError("ALLOWED_HOSTS is required when DEBUG is off (e.g. example.com,www.example.com)")

INSTALLED_APPS = [
    "app",  # first, so its createsuperuser (app/management/commands) replaces django.contrib.auth's
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]

MIDDLEWARE = [
    # Outermost, so every answer (probes included) names the revision that served it.
    "app.revision.RevisionMiddleware",
    # Next: probes answer before host validation and HTTPS redirects, so Docker's HEALTHCHECK
    # (which knows no domain name and speaks plain HTTP) gets a real answer.
    "app.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A query cancelled by DB_STATEMENT_TIMEOUT, a database out of reach: 503 with a page that says
    # why, logged, not mailed (app/database.py).
    "app.database.StatementTimeoutMiddleware",
    "app.database.DatabaseUnreachableMiddleware",
]

ROOT_URLCONF = "app.urls"
ASGI_APPLICATION = "app.asgi.application"
WSGI_APPLICATION = "app.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Accounts ---------------------------------------------------------------------------------
# Admin passwords: Django's standard rules (not like the user's details, not a common password, not
# all digits) and 15 characters at least, NIST SP 800-63B-4's floor for a password that is the only
# factor. Guessing is also slowed by nginx's limit_req and banned by fail2ban (app/logins.py).
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 15},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
# PostgreSQL on the host when DB_NAME is set. DB_HOST is a socket directory (/var/run/postgresql,
# mounted by docker-compose.yml: peer authentication, no password; DB_PORT 5432 is PostgreSQL,
# 6432 pgbouncer) or a host name for a database on another machine (with DB_PASSWORD). Without
# DB_NAME: SQLite in DATA_DIR, the embedded default for a first run.
# Seconds any one statement may run before PostgreSQL cancels it (0: no limit); the page then
# says so (app/database.py). 10 s is hundreds of times what this site's queries take, and well
# under nginx's 60 s proxy_read_timeout, so a visitor sees the site's explanation, not a 504.
# migrate lifts it for its own connection: schema changes on big tables may take longer.
DB_STATEMENT_TIMEOUT = env_int("DB_STATEMENT_TIMEOUT", 10, minimum=0)
if DB_NAME:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": DB_NAME,
            "USER": env_str("DB_USER", ""),
            "PASSWORD": env_str("DB_PASSWORD", ""),
            "HOST": env_str("DB_HOST", ""),
            "PORT": env_int("DB_PORT", 5432, minimum=1),
            # 0, always: under ASGI each request runs in its own thread, so a persistent connection
            # is never reused and is leaked instead (Django docs, "Deploying ASGI": disable them).
            "CONN_MAX_AGE": 0,
            # Fail fast when the server is away, so /readyz answers 503 instead of hanging.
            "OPTIONS": {"connect_timeout": env_int("DB_CONNECT_TIMEOUT", 5, minimum=1)},
        }
    }
else:
    # The trial's (or `make dev`'s) SQLite. gunicorn prints the trial banner once per start.
    SQLITE_PATH = trial.sqlite_database(DATA_DIR)  # owner-only, its folder too
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": SQLITE_PATH}}
    if DEBUG:
        from app.startup import announce_sqlite

        announce_sqlite(SQLITE_PATH)

# --- HTTPS and cookies ------------------------------------------------------------------------
# HTTPS=true when nginx terminates TLS in front of the site. nginx sends X-Forwarded-Proto and the
# uvicorn worker trusts it from the Docker bridge (docker/gunicorn.conf.py), so Django sees https.
HTTPS = env_bool("HTTPS", False)
SECURE_SSL_REDIRECT = HTTPS  # nginx redirects too; this guards a misrouted plain-HTTP request
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("HSTS_SECONDS", 31_536_000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("HSTS_PRELOAD", False)
# Both are opt-in (.env.example): includeSubDomains breaks any subdomain still on plain HTTP and
# preload is a months-long commitment, so check --deploy's reminders to turn them on are silenced.
SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W021"]
if SECURE_HSTS_PRELOAD and not SECURE_HSTS_INCLUDE_SUBDOMAINS:
    raise ConfigError("HSTS_PRELOAD=true needs HSTS_INCLUDE_SUBDOMAINS=true (the preload list requires it)")
# Only for a WSGI server behind a proxy: trust X-Forwarded-Proto from whoever reaches the app.
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Django 4+ checks the Origin header of POSTs: list the site's origins with their scheme.
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
for origin in CSRF_TRUSTED_ORIGINS:
    if not origin.startswith(("http://", "https://")):
        raise ConfigError(f"CSRF_TRUSTED_ORIGINS: {origin!r} needs a scheme, e.g. https://{origin}")

# --- Static files -----------------------------------------------------------------------------
# collectstatic writes to STATIC_ROOT: in the image that is /app/collected, filled at build time
# with the manifest this version renders from; the entrypoint publishes the files to the bind mount
# nginx serves (publish_static). Hashed names (style.3f2a9c.css) change with the content, so nginx
# can tell browsers to cache forever.
STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}

# --- Email ------------------------------------------------------------------------------------
# Without EMAIL_HOST, mail (e.g. error reports) is printed to the log instead of sent.
EMAIL_HOST = env_str("EMAIL_HOST", "")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "webmaster@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Who gets a mail with the traceback when a page fails (500), as in a To: header:
# '"Doe, Jane" <jane@example.com>, ops@example.com'. At most one mail per error per 10 minutes.
ADMINS = env_addresses("ADMINS", "")
if ADMINS and not EMAIL_HOST and not DEBUG:
    # The reports would only be printed to the log, beside the traceback that is there already.
    raise ConfigError("ADMINS is set but EMAIL_HOST is not: error reports would never be sent (set both)")
# Seconds an SMTP conversation may take: a mail server that accepts connections but never answers
# must not hold the error-mail thread (app/mail.py) for good.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)

# --- Internationalisation ---------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Logging ----------------------------------------------------------------------------------
# Everything to stderr: Docker collects it (docker compose logs), nothing is written in the image.
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ConfigError(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {LOG_LEVEL!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "{levelname} {name}: {message}", "style": "{"}},
    "filters": {"require_debug_false": {"()": "django.utils.log.RequireDebugFalse"}},
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "plain"},
        "null": {"class": "logging.NullHandler"},
        # Django's mail to ADMINS, sent off the request's path, once per distinct error per 10 minutes.
        "mail_admins": {
            "class": "app.mail.ThrottledAdminEmailHandler",
            "level": "ERROR",
            "filters": ["require_debug_false"],
            "minutes": 10,
        },
    },
    "root": {"handlers": ["stderr"], "level": LOG_LEVEL},
    "loggers": {
        # As Django's default, with its mail handler replaced (the root's stderr prints the lines).
        "django": {"handlers": ["mail_admins"], "level": "INFO"},
        # Requests for other host names (scanners probing by IP) get 400 and the access log's line,
        # nothing more: with no handler at all Python's last resort would print a ~2 KB traceback.
        "django.security.DisallowedHost": {"handlers": ["null"], "propagate": False},
        # Failed logins, the lines fail2ban bans on (fail2ban/): kept whatever LOG_LEVEL says.
        "app.logins": {"level": "WARNING"},
    },
}

# --- The site ---------------------------------------------------------------------------------
SITES_PER_PAGE = env_int("SITES_PER_PAGE", 12, minimum=1)
