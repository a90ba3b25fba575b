# frozen_string_literal: true

require "json"

module TaskerEvents
  # Writes the Rust core's log lines to the gem's Logger, on the drain thread. Each line keeps
  # its structured fields (event_id, event_name, namespace, correlation_id, queue_name,
  # message_id, ...), as `key=value` pairs or, with `log_format: :json`, as one JSON object.
  class LogWriter
    SEVERITIES = {
      "ERROR" => Logger::ERROR, "WARN" => Logger::WARN, "INFO" => Logger::INFO,
      "DEBUG" => Logger::DEBUG, "TRACE" => Logger::DEBUG
    }.freeze

    FORMATS = %i[text json].freeze

    # @param format [Symbol] :text or :json
    # @raise [ConfigError] for another format
    def initialize(format = :text)
      unless FORMATS.include?(format)
        raise ConfigError, "log_format must be one of #{FORMATS.join(", ")}, got #{format.inspect}"
      end

      @format = format
    end

    # @param lines [Array<Array(String, String, Hash)>] level, message and fields per line
    # @param dropped [Integer] lines the core could not keep since the last call
    def write(lines, dropped)
      logger = TaskerEvents.logger
      lines.each do |level, message, fields|
        logger.add(SEVERITIES.fetch(level), render(message, fields))
      end
      return unless dropped.positive?

      logger.warn(render("log lines dropped: too many were waiting", dropped:))
    end

    # @return [String]
    def render(message, fields)
      return JSON.generate({ message:, **fields }) if @format == :json

      pairs = fields.map { |key, value| "#{key}=#{quote(value.to_s)}" }
      ["tasker_events:", message, *pairs].join(" ")
    end

    private

    def quote(value)
      value.match?(/[\s"=]/) || value.empty? ? value.inspect : value
    end
  end
end
