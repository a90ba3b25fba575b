# frozen_string_literal: true

module TaskerEvents
  # Base class of the gem's operational errors. Publishing never raises one of these for a
  # delivery problem: those are counted in {TaskerEvents.stats} and logged.
  class Error < StandardError; end

  # A setting given to {TaskerEvents.start} or read from a worker.toml is unknown or out of
  # range, or the database URL cannot be parsed (its password is never part of the message).
  class ConfigError < Error; end

  # A task template is malformed; the message names the file, the step, the event, what is
  # wrong, and the YAML line when the parser gives one.
  class TemplateError < Error; end

  # A template names a publisher that is not registered, with `strict_publishers: true`.
  class UnknownPublisherError < ConfigError; end

  # PostgreSQL refused or could not be reached for an operation that reports back, such as
  # {TaskerEvents.install_pgmq}.
  class DatabaseError < Error; end

  # PostgreSQL could not be reached or refused the login; the message gives its reason and the
  # URL with the password masked.
  class DatabaseUnreachableError < DatabaseError; end

  # A durable queue that was asked for does not exist, or PGMQ is not installed; the message
  # names the queue and lists the `*_domain_events` queues that do exist.
  class QueueNotFoundError < Error; end

  # The database has no PGMQ at all (`tasker-events install` or {TaskerEvents.install_pgmq}
  # installs it).
  class PgmqNotInstalledError < QueueNotFoundError; end

  # The `tasker-events` command line was wrong: an unknown command or option, a missing or
  # malformed argument.
  class UsageError < Error; end

  # Input that can never be delivered: an invalid event name, namespace, delivery mode, pattern,
  # UUID, or a payload value without a JSON form. It is an ArgumentError, as Ruby expects for
  # bad arguments; the message names the value and where it was.
  class ValidationError < ArgumentError; end

  # What the gem contains when subscriber or publisher code raises it: every StandardError, plus
  # ScriptError (NotImplementedError from an unfinished hook, a LoadError from a lazy require),
  # which is a bug in one class and must not stop the drain thread that serves all the others.
  # Interrupts, SystemExit and NoMemoryError still propagate.
  USER_CODE_ERRORS = [StandardError, ScriptError].freeze
end
