# frozen_string_literal: true

module TaskerEvents
  # The settings of {TaskerEvents.start}, checked before anything starts.
  class Configuration
    # Every setting with its default. Durations are in milliseconds.
    DEFAULTS = {
      database_url: nil,
      install_pgmq: false,
      command_buffer_size: 1000,
      broadcast_buffer_size: 2000,
      dispatch_timeout_ms: 5000,
      shutdown_drain_timeout_ms: 5000,
      log_subscriber_errors: true,
      log_dropped_events: true,
      durable_batch_size: 500,
      pool_size: 2,
      connect_timeout_ms: 2000
    }.freeze

    BOOLEANS = %i[install_pgmq log_subscriber_errors log_dropped_events].freeze

    attr_reader :settings

    # @param settings [Hash{Symbol => Object}] any of {DEFAULTS}' keys
    # @raise [ConfigurationError] naming an unknown setting or a value of the wrong kind
    def initialize(**settings)
      unknown = settings.keys - DEFAULTS.keys
      unless unknown.empty?
        raise ConfigurationError,
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

      return value if value.is_a?(Integer) && value.positive?

      raise ConfigurationError, "#{key} must be a positive Integer, got #{value.inspect}"
    end

    def check_boolean(key, value)
      return value if [true, false].include?(value)

      raise ConfigurationError, "#{key} must be true or false, got #{value.inspect}"
    end

    def check_url(value)
      return nil if value.nil? || value == ""
      return value if value.is_a?(String)

      raise ConfigurationError, "database_url must be a String, got a #{value.class}"
    end
  end
end
