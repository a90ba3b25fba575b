# frozen_string_literal: true

require "logger"
require "time"
require "date"

require_relative "tasker_events/version"
require_relative "tasker_events/errors"
require_relative "tasker_events/tasker_events"
require_relative "tasker_events/configuration"
require_relative "tasker_events/base_subscriber"
require_relative "tasker_events/subscriber_registry"
require_relative "tasker_events/subscriber_timeout"
require_relative "tasker_events/watchdog"
require_relative "tasker_events/base_publisher"
require_relative "tasker_events/publisher_registry"
require_relative "tasker_events/publisher_runner"
require_relative "tasker_events/step_context"
require_relative "tasker_events/task_template"
require_relative "tasker_events/log_writer"
require_relative "tasker_events/drain_thread"
require_relative "tasker_events/exit_request"
require_relative "tasker_events/event_system"
require_relative "tasker_events/test_mode"
require_relative "tasker_events/metrics_app"
require_relative "tasker_events/open_telemetry_bridge"

# Domain events for workflow workers: publish business events from step handlers and have a
# Rust core deliver them to PGMQ (durable), to in-process subscribers (fast), or both
# (broadcast). Publishing never blocks the step and never raises for a delivery problem.
module TaskerEvents
  DELIVERY_MODES = %i[durable fast broadcast].freeze

  # The default payload and metadata of {.publish}: shared, so a call allocates none.
  NO_FIELDS = {}.freeze
  private_constant :NO_FIELDS

  # Ruby Logger levels as the Rust core names them.
  LOG_LEVELS = { Logger::DEBUG => "debug", Logger::INFO => "info", Logger::WARN => "warn",
                 Logger::ERROR => "error", Logger::FATAL => "off", Logger::UNKNOWN => "off" }.freeze

  @logger = nil

  class << self
    # Starts the event system: the Rust runtime, the durable publisher, the step-completion
    # dispatcher and the drain thread. Idempotent: a second call while running changes nothing
    # and returns false.
    #
    # @param logger [Logger, nil] where the gem logs, the Rust core's lines included (default:
    #   $stderr at WARN); the core logs at the logger's level
    # @param log_format [Symbol] :text (`key=value` fields) or :json
    # @param templates [Array<String>] paths or globs of YAML task templates
    # @param config [String, nil] a directory with base/worker.toml and
    #   environments/<environment>/worker.toml; keyword settings override it
    # @param environment [String] which overlay of `config` to read (default: TASKER_ENV or
    #   "development")
    # @param strict_publishers [Boolean] raise when a template names an unregistered publisher
    #   (otherwise warn and use the default publisher)
    # @param settings [Hash] see {Configuration::DEFAULTS}; `database_url` is needed only once
    #   a durable or broadcast event is published
    # @return [Boolean] true when this call started the system
    # @raise [ConfigError] for an unknown or invalid setting
    # @raise [TemplateError] for a malformed template
    # @raise [UnknownPublisherError] with `strict_publishers: true`
    def start(logger: nil, log_format: :text, templates: [], config: nil, environment: nil,
              strict_publishers: false, **settings)
      self.logger = logger if logger
      event_system.start(templates:, config:, environment:, strict_publishers:, log_format:,
                         settings:)
    end

    # @return [Boolean]
    def started?
      Native.running?
    end

    # Publishes one event. Never blocks on PostgreSQL or subscribers and never raises for a
    # delivery problem: an event that cannot be delivered is counted in {.stats} and logged.
    #
    # @param event_name [String] dotted lowercase name, e.g. "payment.processed"
    # @param payload [Hash] JSON-compatible data; Time and Date become ISO 8601 strings in
    #   PGMQ. Ruby subscribers receive this very object (not a copy), as with
    #   ActiveSupport::Notifications: do not change it after publishing
    # @param namespace [String] 1-33 of a-z, 0-9, _; durable events go to
    #   the PGMQ queue "#{namespace}_domain_events"
    # @param delivery_mode [Symbol] :durable, :fast or :broadcast
    # @param task_uuid [String, nil]
    # @param step_uuid [String, nil]
    # @param step_name [String, nil]
    # @param correlation_id [String, nil] defaults to task_uuid, else a fresh UUIDv7
    # @param metadata [Hash] extra metadata; the standard fields win over keys of the same name
    # @param execution_result [Hash, nil]
    # @return [String, nil] the event id, or nil when the event was dropped
    # @raise [ValidationError] (an ArgumentError) for an invalid name, namespace, mode or UUID,
    #   or a payload value with no JSON form where JSON is needed (durable and broadcast
    #   events, fast events a Rust subscriber matches), naming it
    def publish(event_name, payload = NO_FIELDS, namespace:, delivery_mode: :durable,
                task_uuid: nil, step_uuid: nil, step_name: nil, correlation_id: nil,
                metadata: NO_FIELDS, execution_result: nil)
      # Types are checked in the core: here they would cost more than the rest of publish.
      Native.publish(event_name, payload, namespace, delivery_mode, task_uuid, step_uuid,
                     step_name, correlation_id, metadata, execution_result)
    end

    # Waits until every event accepted so far has been written to PGMQ and handed to every
    # matching subscriber (or dropped and counted).
    # @param timeout [Numeric] seconds
    # @return [Boolean] false when the timeout passed first
    # @raise [Error] when called from a subscriber, which would wait for itself
    def flush(timeout: 5)
      if event_system.drain_thread_current?
        raise Error, "flush was called from a subscriber; it would wait for its own delivery"
      end

      Native.flush(Float(timeout))
    end

    # @return [Hash] counters: `published` per delivery mode, `rejected` (before routing), and
    #   for each path (`durable`, `rust_subscribers`, `ruby_subscribers`) `accepted`,
    #   `delivered`, `dropped` per reason and `queued`; `subscriber_errors` and
    #   `subscriber_timeouts` per kind of subscriber
    def stats
      Native.stats
    end

    # The gem's metrics as OpenTelemetry instruments: `tasker.domain_events.published.total`
    # per `event_name` and `namespace`, delivered, dropped (per `path` and `reason`), rejected,
    # queued, declared-event outcomes, subscriber errors and timeouts (per `kind`), and the
    # durable write latency histogram (per `namespace` and `outcome`). For exporters of your
    # own; {OpenTelemetryBridge} and {MetricsApp} are built on it.
    # @return [Array<Hash>] each with `name`, `prometheus_name`, `kind` ("counter", "gauge" or
    #   "histogram"), `unit`, `description` and `points` (`attributes`, `value`; a histogram's
    #   value has cumulative `buckets` as [upper bound, count] pairs, `count` and `sum`)
    def metrics
      Native.metrics
    end

    # @return [String] {.metrics} in the Prometheus text exposition format, e.g.
    #   `tasker_domain_events_published_total{event_name="a.b",namespace="payments"} 3`
    def metrics_text
      Native.metrics_text
    end

    # Publishes the events that the step's task template declares for this outcome. Only
    # enqueues: conditions, publishers (on the drain thread), schemas and routing happen
    # elsewhere, and never affect the step.
    #
    # @param step_context [StepContext, Hash] which step of which task completed
    # @param step_result [Hash] `success`, `retryable`, `result` (the default payload),
    #   `metadata`
    # @return [Boolean] true when accepted (even if no event matches), false when dropped
    #   (system not started, unknown template, channel full: counted and logged)
    # @raise [ValidationError] for a malformed context or a step_result without a JSON form
    def dispatch_step_events(step_context, step_result)
      context = step_context.is_a?(StepContext) ? step_context : StepContext.new(**step_context)
      Native.dispatch(
        context.task_uuid, context.step_uuid, context.step_name, context.namespace,
        context.task_name, context.task_version, context.correlation_id, context.attempt,
        step_result
      )
    end

    # Stops accepting events and delivers what is queued until `shutdown_drain_timeout_ms`,
    # then stops the runtime and the drain thread; what is still queued then is counted as
    # dropped. Safe to call twice.
    # @return [Hash{Symbol => Integer}] `drained` and `dropped` (events and step completions)
    #   and `duration_ms`
    def shutdown
      event_system.shutdown
    end

    # Restarts the event system in a forked child process (Puma cluster mode, Sidekiq swarm,
    # Unicorn, Resque), with the parent's settings, templates and subscribers. The gem does
    # this by itself on the child's first call into it; call it from a server's after-fork
    # hook (Puma's `on_worker_boot`) to have it done before the first event. Events the parent
    # had queued are never sent by the child, and the child's {.stats} start from zero. A no-op
    # outside a freshly forked child.
    # @return [Boolean] whether a system was started in this child
    def after_fork
      event_system.after_fork
    end

    # Installs PGMQ into the database as plain SQL when it is missing (never
    # `CREATE EXTENSION`). Safe to run again.
    # @param database_url [String]
    # @param connect_timeout_ms [Integer]
    # @return [true]
    # @raise [DatabaseError] when PostgreSQL cannot be reached or refuses
    def install_pgmq(database_url, connect_timeout_ms: 5000)
      Native.install_pgmq(string(:database_url, database_url), Integer(connect_timeout_ms))
    end

    # @return [Logger]
    def logger
      @logger ||= Logger.new($stderr, level: Logger::WARN)
    end

    # Sets the gem's logger; the Rust core then logs at its level. nil restores the default.
    def logger=(logger)
      @logger = logger
      Native.log_level = LOG_LEVELS.fetch(self.logger.level, "error")
    end

    # @api private
    def log_subscriber_errors?
      event_system.configuration.settings[:log_subscriber_errors]
    end

    # @api private
    def event_system
      @event_system ||= EventSystem.new
    end

    private

    def string(name, value)
      return value.to_s if value.is_a?(String) || value.is_a?(Symbol)

      raise ValidationError, "#{name} must be a String or Symbol, got #{value.inspect}"
    end
  end
end

# Code written for tasker-core (`TaskerCore::DomainEvents::BaseSubscriber`, ...) runs unchanged.
module TaskerCore
  DomainEvents = TaskerEvents
end
