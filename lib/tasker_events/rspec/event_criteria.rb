# frozen_string_literal: true

module TaskerEvents
  module RSpec
    # What {HavePublishedDomainEvent} looks for in one event: its name, and optionally its
    # payload, metadata and delivery mode. Knows which criterion an event fails, and how to
    # describe itself and an event in a failure message.
    # @api private
    class EventCriteria
      include ::RSpec::Matchers::Composable

      # Stands for a criterion not given, since nil is a payload one may expect.
      ANY = Object.new.freeze

      # What a failure message says of an event that fails each criterion.
      MISMATCHES = { event_name: "another event name", delivery_mode: "another delivery mode",
                     payload: "payload does not match",
                     metadata: "metadata does not match" }.freeze

      # @return [Symbol, nil]
      attr_reader :delivery_mode

      # @param event_name [String, Symbol, Regexp, #===]
      def initialize(event_name)
        @event_name = event_name.is_a?(Symbol) ? event_name.to_s : event_name
        @payload = ANY
        @metadata = ANY
        @delivery_mode = nil
      end

      # @param payload [Object] compared with the whole payload
      def payload=(payload)
        @payload = symbolize(payload)
      end

      # @param metadata [Hash, Object] a Hash names the keys to check; anything else is
      #   compared with the whole metadata
      def metadata=(metadata)
        @metadata = symbolize(metadata)
      end

      # @param delivery_mode [Symbol, String]
      # @raise [ArgumentError] unless :durable, :fast or :broadcast
      def delivery_mode=(delivery_mode)
        mode = delivery_mode.to_s.to_sym
        unless DELIVERY_MODES.include?(mode)
          raise ArgumentError, "in_mode expects :durable, :fast or :broadcast, " \
                               "got #{delivery_mode.inspect}"
        end

        @delivery_mode = mode
      end

      # @param event [Hash]
      # @return [Boolean]
      def matches?(event)
        mismatch(event).nil?
      end

      # @param event [Hash]
      # @return [Symbol, nil] the first criterion the event fails, nil when it matches
      def mismatch(event)
        return :event_name unless values_match?(@event_name, event[:event_name])
        return :delivery_mode unless mode_matches?(event)
        return :payload if given?(@payload) && !values_match?(@payload, symbolize(event[:payload]))

        :metadata if given?(@metadata) && !metadata_matches?(event[:metadata])
      end

      # @return [String] e.g. `domain event "a.b" with payload {:x=>1} in mode :fast`
      def description
        parts = ["domain event #{description_of(@event_name)}"]
        parts << "with payload #{description_of(@payload)}" if given?(@payload)
        parts << "with metadata #{metadata_description}" if given?(@metadata)
        parts << "in mode #{@delivery_mode.inspect}" if @delivery_mode
        parts.join(" ")
      end

      # @param event [Hash]
      # @return [String] one line of a failure message
      def describe_event(event)
        reason = mismatch(event)
        "#{event[:event_name].inspect} in mode :#{event[:delivery_mode]}, " \
          "payload #{event[:payload].inspect}, metadata #{shown_metadata(event).inspect}: " \
          "#{reason ? MISMATCHES.fetch(reason) : "matches"}"
      end

      private

      def given?(criterion)
        !criterion.equal?(ANY)
      end

      def mode_matches?(event)
        @delivery_mode.nil? || event[:delivery_mode] == @delivery_mode.to_s
      end

      def metadata_matches?(metadata)
        return values_match?(@metadata, metadata) unless @metadata.is_a?(Hash)

        @metadata.all? { |key, value| metadata.key?(key) && values_match?(value, metadata[key]) }
      end

      def metadata_description
        return description_of(@metadata) unless @metadata.is_a?(Hash)

        "including #{description_of(@metadata)}"
      end

      # The namespace and the keys the expectation names; all of it for a matcher.
      def shown_metadata(event)
        metadata = event[:metadata]
        return metadata if given?(@metadata) && !@metadata.is_a?(Hash)

        metadata.slice(:namespace, *(@metadata.is_a?(Hash) ? @metadata.keys : []))
      end

      # Keys compare as Symbols on both sides: an in-process event carries the payload as it
      # was published, with whichever keys the step used. Matchers are left as they are.
      def symbolize(value)
        case value
        when Hash
          value.to_h { |key, item| [key.is_a?(String) ? key.to_sym : key, symbolize(item)] }
        when Array then value.map { |item| symbolize(item) }
        else value
        end
      end
    end
  end
end
