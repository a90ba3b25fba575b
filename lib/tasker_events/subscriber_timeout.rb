# frozen_string_literal: true

module TaskerEvents
  # Raised inside a Ruby subscriber that runs past `dispatch_timeout_ms`, to abandon that
  # event. It is an Exception, not a StandardError, so that a subscriber's own
  # `rescue => e` does not swallow it; the drain thread rescues it, logs and counts it.
  class SubscriberTimeout < Exception # rubocop:disable Lint/InheritException
  end
end
