function n = fast_length(n)
%FAST_LENGTH Smallest integer >= N whose only prime factors are 2, 3 and 5.
%   The FFT sizes refdeblur pads to (scipy.fft.next_fast_len with real=True).
while true
    rest = n;
    for p = [2 3 5]
        while mod(rest, p) == 0
            rest = rest / p;
        end
    end
    if rest == 1
        return
    end
    n = n + 1;
end
end
