# frozen_string_literal: true

module TaskerEvents
  # The settings of {TaskerEvents.start}, checked before anything starts.
  class Configuration
    # Every setting with its default. Durations are in milliseconds.
    DEFAULTS = {
      database_url: nil,
      install_pgmq: false,
      command_buffer_size: 1000,
      durable_buffer_size: 60_000,
      max_payload_bytes: 1_048_576,
      broadcast_buffer_size: 2000,
      dispatch_timeout_ms: 5000,
      shutdown_drain_timeout_ms: 5000,
      log_subscriber_errors: true,
      log_dropped_events: true,
      durable_batch_size: 500,
      pool_size: 2,
      connect_timeout_ms: 2000,
      ffi_integration_enabled: true,
      deduplication_cache_size: 10_000,
      test_mode: false
    }.freeze

    # The worker.toml files the gem ships: the design's base values and its test and
    # production overrides, for `TaskerEvents.start(config: Configuration::SHIPPED_DIR)`.
    SHIPPED_DIR = File.expand_path("../../config/tasker", __dir__)

    BOOLEANS = %i[install_pgmq log_subscriber_errors log_dropped_events
                  ffi_integration_enabled test_mode].freeze

    # Settings for which 0 is meaningful (it turns the feature off).
    ZERO_ALLOWED = %i[deduplication_cache_size].freeze

    attr_reader :settings

    # Reads `<dir>/base/worker.toml` overlaid with `<dir>/environments/<environment>/worker.toml`
    # (the sections and keys of tasker-core's worker configuration), then `overrides`.
    # @param dir [String]
    # @param environment [String]
    # @return [Configuration]
    # @raise [ConfigError] naming the file, the key and the allowed range
    def self.load(dir, environment, **overrides)
      new(**Native.load_worker_config(dir.to_s, environment.to_s), **overrides)
    end

    # @param settings [Hash{Symbol => Object}] any of {DEFAULTS}' keys
    # @raise [ConfigError] naming an unknown setting or a value of the wrong kind
    def initialize(**settings)
      unknown = settings.keys - DEFAULTS.keys
      unless unknown.empty?
        raise ConfigError,
              "unknown setting #{unknown.map(&:inspect).join(", ")}; " \
              "known settings: #{DEFAULTS.keys.join(", ")}"
      end

      @settings = DEFAULTS.merge(settings).each_with_object({}) do |(key, value), checked|
        checked[key] = check(key, value)
      end.freeze
    end

    # @return [Hash{String => Object}] the settings as the native extension reads them
    def to_native
      settings.transform_keys(&:to_s)
    end

    private

    def check(key, value)
      return check_url(value) if key == :database_url
      return check_boolean(key, value) if BOOLEANS.include?(key)

      minimum = ZERO_ALLOWED.include?(key) ? 0 : 1
      return value if value.is_a?(Integer) && value >= minimum

      raise ConfigError, "#{key} must be an Integer of at least #{minimum}, got #{value.inspect}"
    end

    def check_boolean(key, value)
      return value if [true, false].include?(value)

      raise ConfigError, "#{key} must be true or false, got #{value.inspect}"
    end

    def check_url(value)
      return nil if value.nil? || value == ""
      return value if value.is_a?(String)

      raise ConfigError, "database_url must be a String, got a #{value.class}"
    end
  end
end
