# frozen_string_literal: true

module TaskerEvents
  # Base class of in-process (fast and broadcast) event subscribers.
  #
  # A subclass names its patterns with {.subscribes_to} and implements {#handle}. Subscribers
  # are called on the gem's drain thread, one event at a time, in publish order. An exception
  # from {#handle} is logged, counted, passed to {#on_handle_error}, and never reaches other
  # subscribers or the publisher.
  #
  # @example
  #   class PaymentAudit < TaskerEvents::BaseSubscriber
  #     subscribes_to "payment.*", "refund.#"
  #
  #     def handle(event)
  #       logger.info("#{event[:event_name]} #{event[:payload][:amount]}")
  #     end
  #   end
  class BaseSubscriber
    class << self
      # Declares the patterns this subscriber receives. `*` matches one dot-separated segment,
      # `#` any number of segments, and either alone every event.
      # @param patterns [Array<String>]
      # @return [Array<String>] the patterns
      # @raise [ValidationError] naming an invalid pattern
      def subscribes_to(*patterns)
        patterns = patterns.flatten.map { |pattern| Native.validate_pattern(pattern.to_s) }
        raise ValidationError, "subscribes_to needs at least one pattern" if patterns.empty?

        @patterns = patterns.freeze
      end

      # @return [Array<String>] the declared patterns, inherited when a subclass declares none
      def patterns
        @patterns || (superclass.respond_to?(:patterns) ? superclass.patterns : [])
      end
    end

    # @return [Integer, nil] the id the registry gave this subscriber while it is active
    attr_reader :subscriber_id

    # @return [Array<String>] the patterns this instance receives
    def patterns
      self.class.patterns
    end

    # Handles one event.
    # @param event [Hash{Symbol => Object}] frozen, with symbol keys: event_id, event_name,
    #   event_version, delivery_mode, payload, metadata, execution_result. The payload is the
    #   object the step published (shared with it and with other subscribers: do not change
    #   it), or a frozen Hash with symbol keys all the way down for an event built by the core
    def handle(event)
      raise NotImplementedError, "#{self.class} must implement #handle(event)"
    end

    # Called before {#handle}; returning false skips the event.
    # @param event [Hash]
    # @return [Boolean]
    def before_handle(_event)
      true
    end

    # Called after {#handle} returned.
    # @param event [Hash]
    def after_handle(_event); end

    # Called when {#before_handle}, {#handle} or {#after_handle} raised.
    # @param event [Hash]
    # @param error [StandardError, ScriptError]
    def on_handle_error(_event, _error); end

    # @return [Logger] the gem's logger
    def logger
      TaskerEvents.logger
    end

    # @return [Boolean] whether this subscriber currently receives events
    def active?
      !@subscriber_id.nil?
    end

    # Stops this subscriber only; others keep receiving.
    def stop!
      SubscriberRegistry.instance.deactivate(self)
    end

    # @return [Hash{Symbol => Integer}] events received and errors raised by this instance
    def stats
      {
        received: @tasker_events_received || 0,
        errors: @tasker_events_errors || 0,
        timeouts: @tasker_events_timeouts || 0
      }
    end

    # Runs the hooks for one event. Called by the drain thread.
    # @return [Boolean] false when a hook raised
    # @api private
    def dispatch(event)
      @tasker_events_received = (@tasker_events_received || 0) + 1
      return true unless before_handle(event)

      handle(event)
      after_handle(event)
      true
    rescue *USER_CODE_ERRORS => e
      @tasker_events_errors = (@tasker_events_errors || 0) + 1
      report_error(event, e)
      false
    end

    # Logs that this subscriber was abandoned for an event after `dispatch_timeout_ms`.
    # @api private
    def report_timeout(event, error)
      @tasker_events_timeouts = (@tasker_events_timeouts || 0) + 1
      return unless TaskerEvents.log_subscriber_errors?

      TaskerEvents.logger.warn(
        "tasker_events: subscriber #{self.class} abandoned: #{error.message} " \
        "event_id=#{event[:event_id]} event_name=#{event[:event_name]}"
      )
    end

    # @api private
    def activate(subscriber_id)
      @subscriber_id = subscriber_id
    end

    # @api private
    def deactivate
      @subscriber_id = nil
    end

    private

    def report_error(event, error)
      log_error(event, error)
      on_handle_error(event, error)
    rescue *USER_CODE_ERRORS => e
      TaskerEvents.logger.warn("tasker_events: #{self.class}#on_handle_error raised #{e.class}")
    end

    def log_error(event, error)
      return unless TaskerEvents.log_subscriber_errors?

      metadata = event[:metadata] || {}
      TaskerEvents.logger.warn(
        "tasker_events: subscriber #{self.class} raised #{error.class}: #{error.message} " \
        "event_id=#{event[:event_id]} event_name=#{event[:event_name]} " \
        "namespace=#{metadata[:namespace]} correlation_id=#{metadata[:correlation_id]}"
      )
    end
  end
end
